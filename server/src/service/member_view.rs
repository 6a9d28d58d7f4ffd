//! A member's documents as an operator sees and tends them: the view of what the member's phone
//! will see (the offers owed and the card caught up first), the card number as a QR code for
//! printed cards and e-mail, and starting documents afresh from their current state (epochs).

use loyalty_core::api::{EpochsStarted, MemberView, StartEpochs};
use loyalty_core::document::DocumentError;
use loyalty_core::{DocKind, card, inbox, member, offers};

use crate::app::App;
use crate::error::DomainError;
use crate::projection::documents::load;
use crate::projection::epochs::renew;
use crate::service::members::ensure_member;

/// What the server holds for a member: their documents as the phone will see them.
pub async fn view(app: &App, member_id: &str) -> Result<MemberView, DomainError> {
    ensure_member(app, member_id).await?;
    crate::projection::offers::project_pending(app, member_id).await?;
    crate::projection::card::catch_up(app, member_id).await?;
    let stored = app.storage.load_documents(member_id, &DocKind::ALL).await?;
    let doc = |kind: DocKind| -> Result<automerge::AutoCommit, DomainError> {
        let s = stored
            .iter()
            .find(|d| d.kind == kind)
            .ok_or_else(|| DomainError::internal("show member", format!("no {kind} document")))?;
        load(kind, &s.bytes)
    };
    let broken = |e: DocumentError| DomainError::internal("show member", e);
    Ok(MemberView {
        card: card::read(&doc(DocKind::Card)?).map_err(broken)?,
        offers: offers::read_all(&doc(DocKind::Offers)?).map_err(broken)?,
        messages: inbox::read_all(&doc(DocKind::Inbox)?).map_err(broken)?,
        member: member::read(&doc(DocKind::Member)?).map_err(broken)?,
        cards: app.storage.linked_cards(member_id).await?,
        member_id: member_id.to_string(),
    })
}

/// The member's card number as a QR code: its content type and bytes, `format` `svg` (the
/// default) or `png`.
pub async fn card_qr(
    app: &App,
    member_id: &str,
    format: Option<&str>,
) -> Result<(&'static str, Vec<u8>), DomainError> {
    let member = app
        .storage
        .member(member_id)
        .await?
        .ok_or_else(|| DomainError::not_found("member_not_found", "no such member"))?;
    let matrix = loyalty_core::qr::QrMatrix::encode(&member.card_number)
        .map_err(|e| DomainError::internal("rendering a QR code", e))?;
    match format.unwrap_or("svg") {
        "svg" => Ok(("image/svg+xml", matrix.to_svg(8).into_bytes())),
        "png" => {
            let png = matrix
                .to_png(8)
                .map_err(|e| DomainError::internal("rendering a QR code", e))?;
            Ok(("image/png", png))
        }
        other => Err(DomainError::bad_request(
            "invalid_format",
            format!("format `{other}`: use svg or png"),
        )),
    }
}

/// Starts the member's documents afresh from their current state (new epochs): those the request
/// names, or all four.
pub async fn start_epochs(
    app: &App,
    member_id: &str,
    request: StartEpochs,
) -> Result<EpochsStarted, DomainError> {
    ensure_member(app, member_id).await?;
    let mut kinds = if request.docs.is_empty() {
        DocKind::ALL.to_vec()
    } else {
        request.docs
    };
    kinds.sort();
    kinds.dedup();
    if kinds.contains(&DocKind::Card) {
        // The new epoch starts from the card as the ledger has it now.
        crate::projection::card::catch_up(app, member_id).await?;
    }
    let documents = {
        let _guard = app.lock_member(member_id).await;
        renew(app, member_id, &kinds).await?
    };
    tracing::info!(member = %member_id, docs = ?kinds, "an operator started documents afresh");
    Ok(EpochsStarted {
        member_id: member_id.to_string(),
        documents,
    })
}
