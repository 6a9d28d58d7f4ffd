//! Who operates the programme and what each may do: named operator accounts with a role, their
//! tokens (handed out once, kept as SHA-256), the permissions each role grants, and the audit log
//! of their writes.
//!
//! | role | may |
//! |---|---|
//! | `support` | read everything but operators and the audit log; create members and activation codes, link cards, report cards lost, revoke devices; answer and close requests; adjust points up to `Config::support_adjust_limit` |
//! | `marketing` | read the same; publish, end and withdraw offers, define segments, send messages |
//! | `admin` | everything: the programme and tiers, blocking and unblocking, new epochs, operators, the audit log, adjustments of any size |
//!
//! The configured operator token (`--operator-token`) is the bootstrap admin,
//! [`BOOTSTRAP_OPERATOR`]: it keeps working, and it creates the named accounts.

use loyalty_core::api::{AuditEntry, CreatedOperator, NewOperator, OperatorAccount};
use loyalty_core::ids::{hex, random_bytes, sha256};

use crate::app::App;
use crate::error::DomainError;
use crate::storage::{AuditFilter, NewOperatorAccount};

/// The operator the configured operator token belongs to.
pub const BOOTSTRAP_OPERATOR: &str = "admin";

/// The most audit entries one read answers.
pub const MAX_AUDIT_PAGE: i64 = 500;

/// What an operator's account lets them do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Support,
    Marketing,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Support, Role::Marketing, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Support => "support",
            Role::Marketing => "marketing",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// Whether the role grants the permission.
    pub fn allows(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Support => matches!(
                p,
                Permission::Read | Permission::Members | Permission::Requests | Permission::Adjust
            ),
            Role::Marketing => matches!(p, Permission::Read | Permission::Marketing),
        }
    }
}

/// A kind of operator action; which route needs which is the HTTP layer's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Reading members, offers, segments, messages, requests, the programme, reports.
    Read,
    /// Day-to-day member care: new members and activation codes, linking cards, reporting cards
    /// lost, revoking a lost phone.
    Members,
    /// Answering and closing members' requests.
    Requests,
    /// Adjusting points by hand (support up to a limit).
    Adjust,
    /// Offers, segments and messages.
    Marketing,
    /// The programme's rules and tiers, settling now, pinning tiers, new epochs.
    Programme,
    /// Blocking and unblocking members.
    Blocking,
    /// Operator accounts and the audit log.
    Operators,
}

/// Who is asking, once their token is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub operator_id: String,
    pub name: String,
    pub role: Role,
}

impl Identity {
    /// The bootstrap admin of the configured token.
    pub fn bootstrap() -> Self {
        Self {
            operator_id: BOOTSTRAP_OPERATOR.into(),
            name: "bootstrap admin".into(),
            role: Role::Admin,
        }
    }

    /// `403` unless the role grants `p`.
    pub fn require(&self, p: Permission) -> Result<(), DomainError> {
        if self.role.allows(p) {
            return Ok(());
        }
        Err(DomainError::forbidden(format!(
            "the {} role may not do this (needs {p:?})",
            self.role.as_str()
        )))
    }
}

/// `403` when a support operator adjusts more points at once than `limit`; other roles that may
/// adjust at all are not limited.
pub fn may_adjust(identity: &Identity, points: i64, limit: i64) -> Result<(), DomainError> {
    identity.require(Permission::Adjust)?;
    if identity.role == Role::Support && points.unsigned_abs() > limit.unsigned_abs() {
        return Err(DomainError::forbidden(format!(
            "the support role may adjust at most {limit} points at once; ask an admin"
        )));
    }
    Ok(())
}

/// The named account a token belongs to, if it is one and not disabled.
pub async fn identify(app: &App, token: &str) -> Result<Option<Identity>, DomainError> {
    let Some(account) = app
        .storage
        .operator_by_token(sha256(token.as_bytes()))
        .await?
    else {
        return Ok(None);
    };
    let role = Role::parse(&account.role);
    match (account.disabled_at_ms, role) {
        (None, Some(role)) => Ok(Some(Identity {
            operator_id: account.operator_id,
            name: account.name,
            role,
        })),
        _ => Ok(None),
    }
}

/// Creates an account and hands out its token, this once.
pub async fn create(
    app: &App,
    by: &Identity,
    request: NewOperator,
) -> Result<CreatedOperator, DomainError> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::bad_request(
            "invalid_operator",
            "name must be 1-100 printable characters",
        ));
    }
    let role = Role::parse(&request.role).ok_or_else(|| {
        DomainError::bad_request(
            "invalid_operator",
            "role must be one of support, marketing, admin",
        )
    })?;
    let token = format!("lop_{}", hex(&random_bytes::<32>()));
    let account = OperatorAccount {
        operator_id: format!("op_{}", hex(&random_bytes::<8>())),
        name: name.to_string(),
        role: role.as_str().into(),
        created_at_ms: app.now_ms(),
        created_by: by.operator_id.clone(),
        disabled_at_ms: None,
    };
    app.storage
        .create_operator(NewOperatorAccount {
            account: account.clone(),
            token_hash: sha256(token.as_bytes()),
        })
        .await?;
    Ok(CreatedOperator {
        operator: account,
        token,
    })
}

pub async fn list(app: &App) -> Result<Vec<OperatorAccount>, DomainError> {
    Ok(app.storage.operators().await?)
}

/// Disables an account; its token is refused from the next request on. An operator cannot
/// disable themselves (someone must be left to undo a mistake).
pub async fn disable(app: &App, by: &Identity, operator_id: &str) -> Result<(), DomainError> {
    if operator_id == by.operator_id {
        return Err(DomainError::bad_request(
            "invalid_operator",
            "an operator cannot disable their own account",
        ));
    }
    if !app
        .storage
        .disable_operator(operator_id, app.now_ms())
        .await?
    {
        return Err(DomainError::not_found(
            "operator_not_found",
            "no such operator",
        ));
    }
    Ok(())
}

/// The audit log, newest first, optionally of one operator and before an entry id.
pub async fn audit(
    app: &App,
    operator_id: Option<String>,
    before_id: Option<i64>,
    limit: Option<i64>,
) -> Result<Vec<AuditEntry>, DomainError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_AUDIT_PAGE).contains(&limit) {
        return Err(DomainError::bad_request(
            "malformed_query",
            format!("limit must be 1-{MAX_AUDIT_PAGE}"),
        ));
    }
    Ok(app
        .storage
        .audit(AuditFilter {
            operator_id,
            before_id,
            limit,
        })
        .await?)
}

/// Appends one entry to the audit log. A failure is logged, not raised: the write it records has
/// already happened, and the answer must say so.
pub async fn record(app: &App, entry: AuditEntry) {
    if let Err(e) = app.storage.record_audit(entry).await {
        tracing::warn!(error = %e, "an operator write was not recorded in the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_table_says() {
        use Permission::*;
        let all = [
            Read, Members, Requests, Adjust, Marketing, Programme, Blocking, Operators,
        ];
        let granted = |r: Role| {
            all.iter()
                .filter(|p| r.allows(**p))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(granted(Role::Support), [Read, Members, Requests, Adjust]);
        assert_eq!(granted(Role::Marketing), [Read, Marketing]);
        assert_eq!(granted(Role::Admin), all);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn a_refusal_names_the_role_and_what_was_needed() {
        let support = Identity {
            operator_id: "op_1".into(),
            name: "Sam".into(),
            role: Role::Support,
        };
        assert!(support.require(Permission::Adjust).is_ok());
        let refused = support.require(Permission::Operators).unwrap_err();
        assert!(refused.to_string().contains("support"), "{refused}");
    }
}
