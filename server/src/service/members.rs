//! Members as an operator manages them: finding, creation and activation codes, blocking, and
//! revoking a device. What a member's documents hold for the operator is
//! `crate::service::member_view`.

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents::{self};

use crate::storage::{MemberCreation, MemberFilter, MemberLookup, NewMember};
use loyalty_core::api::{
    ActivationCodeResponse, CreateMemberRequest, CreateMemberResponse, MemberMatch,
};
use loyalty_core::checkout_code::{card_number_to_u64, format_card_number};
use loyalty_core::ids::{self, activation_code, card_number};
use loyalty_core::{DocKind, card};

/// Card numbers drawn before giving up on finding a free one.
const CARD_NUMBER_ATTEMPTS: usize = 8;

/// What an operator searches members by: one of these.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub card_number: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub external_ref: Option<String>,
    /// Without a search value: list members, filtered and paged.
    pub list: MemberFilter,
}

/// The most members one page of a list holds.
pub const MAX_PAGE: u32 = 500;

/// Finds members by their card number (their own or a linked plastic card, lost ones too), e-mail,
/// phone or the retailer's reference, at most one of them; at most 50, in member id order. Without
/// one, lists the members the filters admit, a page at a time ([`list`]).
pub async fn find(app: &App, search: Search) -> Result<Vec<MemberMatch>, DomainError> {
    let bad = |m: &str| DomainError::bad_request("malformed_query", m.to_string());
    let given = [
        search.card_number.is_some(),
        search.email.is_some(),
        search.phone.is_some(),
        search.external_ref.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => return list(app, search.list).await,
        1 if search.list == MemberFilter::default() => {}
        1 => return Err(bad("a search by value takes no list filters or paging")),
        _ => {
            return Err(bad(
                "give at most one of card_number, email, phone, external_ref",
            ));
        }
    }
    let too_long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 256);
    if [
        &search.card_number,
        &search.email,
        &search.phone,
        &search.external_ref,
    ]
    .into_iter()
    .any(too_long)
    {
        return Err(bad("a search value is 1 to 256 bytes"));
    }
    if let Some(text) = search.card_number {
        // A card number that is not one (a typo) finds nobody rather than failing the search.
        let Ok(number) = card_number_to_u64(&text) else {
            return Ok(Vec::new());
        };
        let holder = app.storage.card_holder(&format_card_number(number)).await?;
        let Some((member, _)) = holder else {
            return Ok(Vec::new());
        };
        let lookup = MemberLookup::MemberId(member.member_id);
        return Ok(app.storage.find_members(&lookup).await?);
    }
    let lookup = match (search.email, search.phone, search.external_ref) {
        (Some(email), _, _) => MemberLookup::Preference {
            key: "email",
            value: email.trim().to_string(),
        },
        (_, Some(phone), _) => MemberLookup::Preference {
            key: "phone",
            value: phone.trim().to_string(),
        },
        (_, _, Some(reference)) => MemberLookup::ExternalRef(reference),
        _ => {
            return Err(bad(
                "give exactly one of card_number, email, phone, external_ref",
            ));
        }
    };
    Ok(app.storage.find_members(&lookup).await?)
}

/// One page of members in member id order: `limit` 1 to [`MAX_PAGE`] (50 when 0), the next page
/// after the last member id of this one.
pub async fn list(app: &App, mut filter: MemberFilter) -> Result<Vec<MemberMatch>, DomainError> {
    if filter.limit == 0 {
        filter.limit = 50;
    }
    if filter.limit > MAX_PAGE {
        return Err(DomainError::bad_request(
            "malformed_query",
            format!("limit must be 1-{MAX_PAGE}"),
        ));
    }
    let too_long = [&filter.tier, &filter.segment, &filter.after]
        .into_iter()
        .any(|v| v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 256));
    if too_long {
        return Err(DomainError::bad_request(
            "malformed_query",
            "a filter value is 1 to 256 bytes",
        ));
    }
    Ok(app.storage.list_members(&filter).await?)
}

pub(crate) async fn ensure_member(app: &App, member_id: &str) -> Result<(), DomainError> {
    match app.storage.member(member_id).await? {
        Some(_) => Ok(()),
        None => Err(DomainError::not_found("member_not_found", "no such member")),
    }
}

pub(crate) async fn set_blocked(
    app: &App,
    member_id: &str,
    blocked: bool,
) -> Result<(), DomainError> {
    if !app.storage.set_blocked(member_id, blocked).await? {
        return Err(DomainError::not_found("member_not_found", "no such member"));
    }
    let status = if blocked {
        card::CardStatus::Blocked
    } else {
        card::CardStatus::Active
    };
    documents::update(app, member_id, DocKind::Card, |doc| {
        card::set_status(doc, status).map_err(|e| DomainError::internal("card status", e))
    })
    .await?;
    tracing::info!(member = %member_id, blocked, "card status changed");
    Ok(())
}

/// Creates a member with a card number nobody holds and a first activation code; a clash of card
/// numbers draws another, at most [`CARD_NUMBER_ATTEMPTS`] times.
pub async fn create(
    app: &App,
    request: CreateMemberRequest,
) -> Result<CreateMemberResponse, DomainError> {
    let now = app.now_ms();
    for _ in 0..CARD_NUMBER_ATTEMPTS {
        let member_id = ids::new_member_id();
        let card = card_number::generate();
        let (code, code_hash) = activation_code::issue();
        let expires = now + app.config.activation_ttl_ms;
        let member = NewMember {
            documents: documents::new_member_documents(app, &member_id, &card)?,
            member_id: member_id.clone(),
            card_number: card.clone(),
            external_ref: request.external_ref.clone(),
            created_at_ms: now,
            code_hash,
            code_expires_at_ms: expires,
        };
        match app.storage.create_member(member).await? {
            MemberCreation::Created => {
                tracing::info!(member = %member_id, "member created");
                return Ok(CreateMemberResponse {
                    member_id,
                    card_number: card,
                    activation_code: code,
                    activation_expires_at_ms: expires,
                });
            }
            MemberCreation::Taken => continue,
        }
    }
    Err(DomainError::internal(
        "create member",
        "no free card number found",
    ))
}

/// A new activation code for another device of the member.
pub async fn new_activation_code(
    app: &App,
    member_id: &str,
) -> Result<ActivationCodeResponse, DomainError> {
    ensure_member(app, member_id).await?;
    let (code, code_hash) = activation_code::issue();
    let expires = app.now_ms() + app.config.activation_ttl_ms;
    app.storage
        .add_activation_code(member_id, code_hash, expires)
        .await?;
    Ok(ActivationCodeResponse {
        member_id: member_id.to_string(),
        activation_code: code,
        activation_expires_at_ms: expires,
    })
}

/// Revokes a device: its credentials and its checkout key stop working at once.
pub async fn revoke_device(app: &App, device_id: &str) -> Result<(), DomainError> {
    if !app.storage.revoke_device(device_id, app.now_ms()).await? {
        return Err(DomainError::not_found("device_not_found", "no such device"));
    }
    tracing::info!(device = %device_id, "device revoked");
    Ok(())
}
