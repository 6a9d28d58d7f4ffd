//! Which operator route needs which permission: the HTTP side of the roles in
//! `crate::service::operators`. Reads need [`Permission::Read`] unless listed; a write that is not
//! listed needs [`Permission::Operators`] — a route added without a line here is the admin's
//! alone until someone decides otherwise.

use axum::http::Method;
use loyalty_core::api::paths;

use crate::service::operators::Permission;

/// (method, route template, permission), for the routes that need more than the default.
const RULES: &[(&str, &str, Permission)] = &[
    ("GET", paths::ADMIN_OPERATORS, Permission::Operators),
    ("POST", paths::ADMIN_OPERATORS, Permission::Operators),
    ("POST", paths::ADMIN_OPERATOR_DISABLE, Permission::Operators),
    ("GET", paths::ADMIN_AUDIT, Permission::Operators),
    ("POST", paths::ADMIN_MEMBERS, Permission::Members),
    (
        "POST",
        paths::ADMIN_MEMBER_ACTIVATION_CODES,
        Permission::Members,
    ),
    ("POST", paths::ADMIN_MEMBER_CARDS, Permission::Members),
    ("POST", paths::ADMIN_MEMBER_CARD_LOST, Permission::Members),
    ("POST", paths::ADMIN_DEVICE_REVOKE, Permission::Members),
    ("POST", paths::ADMIN_MEMBER_ADJUSTMENTS, Permission::Adjust),
    ("POST", paths::ADMIN_REQUEST_REPLIES, Permission::Requests),
    ("POST", paths::ADMIN_REQUEST_CLOSE, Permission::Requests),
    ("POST", paths::ADMIN_MEMBER_OFFERS, Permission::Marketing),
    ("POST", paths::ADMIN_OFFERS, Permission::Marketing),
    ("POST", paths::ADMIN_OFFER_END, Permission::Marketing),
    ("POST", paths::ADMIN_OFFER_WITHDRAW, Permission::Marketing),
    ("POST", paths::ADMIN_SEGMENTS, Permission::Marketing),
    ("PUT", paths::ADMIN_SEGMENT, Permission::Marketing),
    ("DELETE", paths::ADMIN_SEGMENT, Permission::Marketing),
    ("POST", paths::ADMIN_MEMBER_MESSAGES, Permission::Marketing),
    ("POST", paths::ADMIN_MESSAGES, Permission::Marketing),
    ("PUT", paths::ADMIN_PROGRAMME, Permission::Programme),
    ("POST", paths::ADMIN_PROGRAMME_SETTLE, Permission::Programme),
    ("POST", paths::ADMIN_MEMBER_TIER, Permission::Programme),
    ("POST", paths::ADMIN_MEMBER_EPOCHS, Permission::Programme),
    ("POST", paths::ADMIN_MEMBER_BLOCK, Permission::Blocking),
    ("POST", paths::ADMIN_MEMBER_UNBLOCK, Permission::Blocking),
];

/// The permission a request to `route` (its template) with `method` needs.
pub fn required(method: &Method, route: &str) -> Permission {
    RULES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, p)| *p)
        .unwrap_or(if matches!(*method, Method::GET | Method::HEAD) {
            Permission::Read
        } else {
            Permission::Operators
        })
}

/// Whether the method changes something (and so goes into the audit log).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operator_write_route_is_decided() {
        // Every operator path a write goes to has its line; a new write route fails here until its
        // permission is chosen (unlisted, it would be the admin's alone).
        let document = crate::http::openapi();
        for (path, item) in document.paths.paths {
            if !path.starts_with("/v1/admin") {
                continue;
            }
            let writes = [
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (method, mounted) in writes {
                if mounted {
                    assert!(
                        RULES.iter().any(|(m, r, _)| *m == method && *r == path),
                        "{method} {path} has no permission in RULES"
                    );
                }
            }
        }
    }

    #[test]
    fn reads_need_read_and_unknown_writes_need_admin() {
        assert_eq!(
            required(&Method::GET, paths::ADMIN_MEMBER),
            Permission::Read
        );
        assert_eq!(
            required(&Method::GET, paths::ADMIN_AUDIT),
            Permission::Operators
        );
        assert_eq!(
            required(&Method::POST, "/v1/admin/something-new"),
            Permission::Operators
        );
        assert_eq!(
            required(&Method::POST, paths::ADMIN_OFFERS),
            Permission::Marketing
        );
    }
}
