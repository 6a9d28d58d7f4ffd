//! The audit log's HTTP side: every operator write (any method but GET and HEAD under
//! `/v1/admin`) is recorded after its answer — who (the operator the [`Operator`] extractor
//! identified), what (method and route template), which (the path), when, from where (the client's
//! address), and the answer's status, refusals included. A request that never got as far as
//! naming its operator (a wrong token, a rate limit) is not an operator's write: the access log and
//! the metrics count those.
//!
//! [`Operator`]: crate::http::extract::Operator

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use loyalty_core::api::AuditEntry;

use crate::app::App;
use crate::service::operators::{self, Identity};

/// What the extractor learned about the request, for the middleware to record once it is answered.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Filled>>>);

struct Filled {
    identity: Identity,
    route: String,
    client: String,
}

impl AuditSlot {
    pub fn fill(&self, identity: &Identity, route: &str, client: Option<std::net::IpAddr>) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(Filled {
                identity: identity.clone(),
                route: route.to_string(),
                client: client.map_or_else(|| "unknown".into(), |ip| ip.to_string()),
            });
        }
    }

    fn take(&self) -> Option<Filled> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The middleware: gives each operator write a slot, and records it once answered.
pub async fn audit_writes(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    if !crate::http::access::is_write(&method) || !request.uri().path().starts_with("/v1/admin") {
        return next.run(request).await;
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let target = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(filled) = slot.take() {
        let entry = AuditEntry {
            id: 0,
            at_ms: app.now_ms(),
            operator_id: filled.identity.operator_id,
            operator_name: filled.identity.name,
            role: filled.identity.role.as_str().into(),
            action: format!("{method} {}", filled.route),
            target,
            status: response.status().as_u16(),
            client: filled.client,
        };
        operators::record(&app, entry).await;
    }
    response
}
