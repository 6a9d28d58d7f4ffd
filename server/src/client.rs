//! Clients of the server's operator and till APIs, for `loyalty admin`, `loyalty till`, scripts and
//! tests: [`OperatorClient`] and [`TillClient`].

use std::time::Duration;

use loyalty_core::api::offline::{KeyFeed, OfflinePurchaseRequest, TillExceptions};
use loyalty_core::api::paths;
use loyalty_core::api::{
    ActivationCodeResponse, CreateMemberRequest, CreateMemberResponse, DeliveryRecord, ErrorDetail,
    MemberView, PostMessage, PostOffer, PostReply, PostSegment, PostTargetedOffer, PostingResponse,
    PublishedOffer, PurchaseRequest, RefundRequest, RequestRecord, ScanRequest, ScanResponse,
    SegmentView, SendMessage, SendSummary,
};
use loyalty_core::error::transport_reason;
use loyalty_core::inbox::Message;
use loyalty_core::offers::Offer;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("the server at {url} is not reachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the server refused ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server's answer could not be read: {0}")]
    BadAnswer(String),
}

impl OperatorError {
    /// The server's error code, when it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            OperatorError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

#[derive(Clone)]
/// What both clients share: a base URL, a bearer token, and error bodies read back.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base_url: &str, token: &str) -> Result<Self, OperatorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // A till whose link is down learns it in seconds and goes offline.
            .connect_timeout(Duration::from_secs(3))
            // Well under the server's 10 s idle limit: a pooled connection is never reused just
            // as the server closes it (docs/protocol.md, "Timeouts and load").
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| OperatorError::Unreachable {
                url: base_url.to_string(),
                reason: transport_reason(&e),
            })?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http,
        })
    }

    fn unreachable(&self, e: &reqwest::Error) -> OperatorError {
        OperatorError::Unreachable {
            url: self.base.clone(),
            reason: transport_reason(e),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send_raw(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, OperatorError> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            let ErrorDetail { code, message } = ErrorDetail::from_body(&body);
            return Err(OperatorError::Refused {
                status: status.as_u16(),
                code,
                message,
            });
        }
        Ok(body.to_vec())
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, OperatorError> {
        let body = self.send_raw(request).await?;
        serde_json::from_slice(&body).map_err(|e| OperatorError::BadAnswer(e.to_string()))
    }
}

pub struct OperatorClient {
    api: Api,
}

impl OperatorClient {
    pub fn new(base_url: &str, token: &str) -> Result<Self, OperatorError> {
        Ok(Self {
            api: Api::new(base_url, token)?,
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, OperatorError> {
        self.api
            .send(self.api.http.post(self.api.url(path)).json(body))
            .await
    }

    /// A POST whose success has no body (204).
    async fn post_empty(&self, path: &str) -> Result<(), OperatorError> {
        self.api
            .send_raw(self.api.http.post(self.api.url(path)))
            .await
            .map(|_| ())
    }

    pub async fn create_member(
        &self,
        external_ref: Option<String>,
    ) -> Result<CreateMemberResponse, OperatorError> {
        self.post(paths::ADMIN_MEMBERS, &CreateMemberRequest { external_ref })
            .await
    }

    pub async fn activation_code(
        &self,
        member_id: &str,
    ) -> Result<ActivationCodeResponse, OperatorError> {
        self.post(&paths::admin_member_activation_codes(member_id), &())
            .await
    }

    pub async fn post_offer(
        &self,
        member_id: &str,
        offer: &PostOffer,
    ) -> Result<Offer, OperatorError> {
        self.post(&paths::admin_member_offers(member_id), offer)
            .await
    }

    /// Publishes an offer to a target (members, a tier or a segment), or a new version of it.
    pub async fn publish_offer(
        &self,
        offer: &PostTargetedOffer,
    ) -> Result<PublishedOffer, OperatorError> {
        self.post(paths::ADMIN_OFFERS, offer).await
    }

    pub async fn create_segment(
        &self,
        segment: &PostSegment,
    ) -> Result<SegmentView, OperatorError> {
        self.post(paths::ADMIN_SEGMENTS, segment).await
    }

    /// Replaces a segment's name and rules.
    pub async fn update_segment(
        &self,
        segment_id: &str,
        update: &loyalty_core::api::UpdateSegment,
    ) -> Result<SegmentView, OperatorError> {
        let url = self.api.url(&paths::admin_segment(segment_id));
        self.api.send(self.api.http.put(url).json(update)).await
    }

    pub async fn delete_segment(&self, segment_id: &str) -> Result<(), OperatorError> {
        let url = self.api.url(&paths::admin_segment(segment_id));
        self.api
            .send_raw(self.api.http.delete(url))
            .await
            .map(|_| ())
    }

    pub async fn segments(&self) -> Result<Vec<SegmentView>, OperatorError> {
        let url = self.api.url(paths::ADMIN_SEGMENTS);
        self.api.send(self.api.http.get(url)).await
    }

    pub async fn post_message(
        &self,
        member_id: &str,
        message: &PostMessage,
    ) -> Result<Message, OperatorError> {
        self.post(&paths::admin_member_messages(member_id), message)
            .await
    }

    pub async fn programme(&self) -> Result<loyalty_core::programme::Programme, OperatorError> {
        let url = self.api.url(paths::ADMIN_PROGRAMME);
        self.api.send(self.api.http.get(url)).await
    }

    pub async fn set_programme(
        &self,
        programme: &loyalty_core::programme::Programme,
    ) -> Result<loyalty_core::programme::Programme, OperatorError> {
        let url = self.api.url(paths::ADMIN_PROGRAMME);
        self.api.send(self.api.http.put(url).json(programme)).await
    }

    /// Runs the programme's settle job now (maturity, expiry, warnings, reviews, birthdays).
    pub async fn settle(&self) -> Result<crate::jobs::settle::SettleReport, OperatorError> {
        self.post(paths::ADMIN_PROGRAMME_SETTLE, &()).await
    }

    /// Pins the member's tier (`Some`) or hands them back to the ladder (`None`).
    pub async fn set_tier(
        &self,
        member_id: &str,
        tier: Option<&str>,
    ) -> Result<PostingResponse, OperatorError> {
        let body = loyalty_core::api::SetTier {
            tier: tier.map(str::to_string),
        };
        self.post(&paths::admin_member_tier(member_id), &body).await
    }

    /// Credits or debits a member's points (`AdjustPoints`); safe to retry with the same key.
    pub async fn adjust(
        &self,
        member_id: &str,
        adjustment: &loyalty_core::api::AdjustPoints,
    ) -> Result<PostingResponse, OperatorError> {
        self.post(&paths::admin_member_adjustments(member_id), adjustment)
            .await
    }

    /// Sends one message to explicit members or to a segment.
    pub async fn send_message(&self, message: &SendMessage) -> Result<SendSummary, OperatorError> {
        self.post(paths::ADMIN_MESSAGES, message).await
    }

    /// Members whose `field` (`card_number`, `email`, `phone`, `external_ref`) is `value`.
    pub async fn find_members(
        &self,
        field: &str,
        value: &str,
    ) -> Result<Vec<loyalty_core::api::MemberMatch>, OperatorError> {
        let url = self.api.url(paths::ADMIN_MEMBERS);
        self.api
            .send(self.api.http.get(url).query(&[(field, value)]))
            .await
    }

    /// One page of members by the list filters given as query pairs (`tier`, `status`, `segment`,
    /// `enrolled_from_ms`, `enrolled_to_ms`, `after`, `limit`).
    pub async fn list_members(
        &self,
        query: &[(&str, String)],
    ) -> Result<Vec<loyalty_core::api::MemberMatch>, OperatorError> {
        let url = self.api.url(paths::ADMIN_MEMBERS);
        self.api.send(self.api.http.get(url).query(query)).await
    }

    /// Links a plastic card to the member; answers their linked cards.
    pub async fn link_card(
        &self,
        member_id: &str,
        card_number: &str,
    ) -> Result<Vec<loyalty_core::api::LinkedCard>, OperatorError> {
        let body = loyalty_core::api::LinkCard {
            card_number: card_number.to_string(),
        };
        self.post(&paths::admin_member_cards(member_id), &body)
            .await
    }

    /// Reports one of the member's linked cards lost; answers their linked cards.
    pub async fn report_card_lost(
        &self,
        member_id: &str,
        card_number: &str,
    ) -> Result<Vec<loyalty_core::api::LinkedCard>, OperatorError> {
        let url = self
            .api
            .url(&paths::admin_member_card_lost(member_id, card_number));
        self.api.send(self.api.http.post(url)).await
    }

    /// What offline tills' flushes could not do as the till did it, newest first.
    pub async fn till_exceptions(&self, limit: u32) -> Result<TillExceptions, OperatorError> {
        let url = self.api.url(paths::ADMIN_TILL_EXCEPTIONS);
        let query = [("limit", limit.to_string())];
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// The programme's outstanding points, in points and money.
    pub async fn liability(
        &self,
    ) -> Result<loyalty_core::api::reports::LiabilityReport, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_LIABILITY);
        self.api.send(self.api.http.get(url)).await
    }

    /// The liability report as the server's CSV.
    pub async fn liability_csv(&self) -> Result<String, OperatorError> {
        self.report_csv(paths::ADMIN_REPORT_LIABILITY, &[]).await
    }

    /// A report as the server's CSV: the report's query with `format=csv`.
    async fn report_csv(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, OperatorError> {
        let request = self
            .api
            .http
            .get(self.api.url(path))
            .query(query)
            .query(&[("format", "csv")]);
        let body = self.api.send_raw(request).await?;
        String::from_utf8(body).map_err(|e| OperatorError::BadAnswer(e.to_string()))
    }

    /// The members by tier, activity and repeat purchases.
    pub async fn members_report(
        &self,
    ) -> Result<loyalty_core::api::reports::MembersReport, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_MEMBERS);
        self.api.send(self.api.http.get(url)).await
    }

    /// Points moved per period, by the query pairs given (`period`, `from_ms`, `to_ms`).
    pub async fn points_report(
        &self,
        query: &[(&str, String)],
    ) -> Result<loyalty_core::api::reports::PointsActivity, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_POINTS);
        self.api.send(self.api.http.get(url).query(query)).await
    }

    /// The points activity report as the server's CSV.
    pub async fn points_report_csv(
        &self,
        query: &[(&str, String)],
    ) -> Result<String, OperatorError> {
        self.report_csv(paths::ADMIN_REPORT_POINTS, query).await
    }

    /// What became of one send or a period's sends, by the query pairs given (`message_id`, or
    /// `from_ms` and `to_ms`).
    pub async fn deliveries_report(
        &self,
        query: &[(&str, String)],
    ) -> Result<loyalty_core::api::reports::DeliveryReport, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_DELIVERIES);
        self.api.send(self.api.http.get(url).query(query)).await
    }

    /// The delivery report as the server's CSV.
    pub async fn deliveries_report_csv(
        &self,
        query: &[(&str, String)],
    ) -> Result<String, OperatorError> {
        self.report_csv(paths::ADMIN_REPORT_DELIVERIES, query).await
    }

    /// Segment sizes over their latest `runs` recomputes and the RFM score distribution.
    pub async fn segments_report(
        &self,
        runs: Option<u32>,
    ) -> Result<loyalty_core::api::reports::SegmentsReport, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_SEGMENTS);
        let query: Vec<(&str, String)> =
            runs.map(|r| ("runs", r.to_string())).into_iter().collect();
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// The segments report as the server's CSV.
    pub async fn segments_report_csv(&self, runs: Option<u32>) -> Result<String, OperatorError> {
        let query: Vec<(&str, String)> =
            runs.map(|r| ("runs", r.to_string())).into_iter().collect();
        self.report_csv(paths::ADMIN_REPORT_SEGMENTS, &query).await
    }

    /// The fraud watch list, by the query pairs given (`by`, `from_ms`, `to_ms`, `limit`,
    /// `min_devices`).
    pub async fn watch_list(
        &self,
        query: &[(&str, String)],
    ) -> Result<loyalty_core::api::watch_list::WatchList, OperatorError> {
        let url = self.api.url(paths::ADMIN_REPORT_WATCH);
        self.api.send(self.api.http.get(url).query(query)).await
    }

    /// The fraud watch list as the server's CSV.
    pub async fn watch_list_csv(&self, query: &[(&str, String)]) -> Result<String, OperatorError> {
        self.report_csv(paths::ADMIN_REPORT_WATCH, query).await
    }

    /// Every operator account (admin only).
    pub async fn operators(
        &self,
    ) -> Result<Vec<loyalty_core::api::OperatorAccount>, OperatorError> {
        let url = self.api.url(paths::ADMIN_OPERATORS);
        self.api.send(self.api.http.get(url)).await
    }

    /// Creates a named operator account; the answer holds its token, this once (admin only).
    pub async fn create_operator(
        &self,
        name: &str,
        role: &str,
    ) -> Result<loyalty_core::api::CreatedOperator, OperatorError> {
        let body = loyalty_core::api::NewOperator {
            name: name.into(),
            role: role.into(),
        };
        self.post(paths::ADMIN_OPERATORS, &body).await
    }

    /// Disables an operator account (admin only).
    pub async fn disable_operator(&self, operator_id: &str) -> Result<(), OperatorError> {
        self.post_empty(&paths::admin_operator_disable(operator_id))
            .await
    }

    /// The audit log, newest first (admin only).
    pub async fn audit(
        &self,
        operator_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<loyalty_core::api::AuditEntry>, OperatorError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(o) = operator_id {
            query.push(("operator_id", o.to_string()));
        }
        if let Some(b) = before {
            query.push(("before", b.to_string()));
        }
        let url = self.api.url(paths::ADMIN_AUDIT);
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// What became of each recipient of a message, or of each message to a member.
    pub async fn deliveries(
        &self,
        message_id: Option<&str>,
        member_id: Option<&str>,
    ) -> Result<Vec<DeliveryRecord>, OperatorError> {
        let mut query = Vec::new();
        if let Some(m) = message_id {
            query.push(("message_id", m));
        }
        if let Some(m) = member_id {
            query.push(("member_id", m));
        }
        let url = self.api.url(paths::ADMIN_DELIVERIES);
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// Members' requests, optionally of one status (`open`, `answered`, `closed`).
    pub async fn requests(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<RequestRecord>, OperatorError> {
        let url = self.api.url(paths::ADMIN_REQUESTS);
        let query: Vec<(&str, &str)> = status.map(|s| ("status", s)).into_iter().collect();
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// Answers a request, named as the request list gives it (`<member_id>.<request_id>`).
    pub async fn reply_request(
        &self,
        id: &str,
        reply: &PostReply,
    ) -> Result<RequestRecord, OperatorError> {
        self.post(&paths::admin_request_replies(id), reply).await
    }

    pub async fn close_request(&self, id: &str) -> Result<RequestRecord, OperatorError> {
        let url = self.api.url(&paths::admin_request_close(id));
        self.api.send(self.api.http.post(url)).await
    }

    pub async fn member(&self, member_id: &str) -> Result<MemberView, OperatorError> {
        let url = self.api.url(&paths::admin_member(member_id));
        self.api.send(self.api.http.get(url)).await
    }

    /// One page of the member's whole ledger, newest first: after the page whose `next` is
    /// `before` (the first page when `None`), at most `limit` (the server's default when `None`).
    pub async fn member_ledger(
        &self,
        member_id: &str,
        before: Option<&str>,
        limit: Option<u32>,
    ) -> Result<loyalty_core::api::history::LedgerPage, OperatorError> {
        let url = self.api.url(&paths::admin_member_ledger(member_id));
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(before) = before {
            query.push(("before", before.to_string()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        self.api.send(self.api.http.get(url).query(&query)).await
    }

    /// One page of offers with their figures, by the filters given as query pairs (`status`,
    /// `after`, `limit`).
    pub async fn offers(
        &self,
        query: &[(&str, String)],
    ) -> Result<Vec<loyalty_core::api::offer_admin::OfferRecord>, OperatorError> {
        let url = self.api.url(paths::ADMIN_OFFERS);
        self.api.send(self.api.http.get(url).query(query)).await
    }

    pub async fn offer(
        &self,
        offer_id: &str,
    ) -> Result<loyalty_core::api::offer_admin::OfferRecord, OperatorError> {
        let url = self.api.url(&paths::admin_offer(offer_id));
        self.api.send(self.api.http.get(url)).await
    }

    /// The offer's uptake in every segment.
    pub async fn offer_uptake(
        &self,
        offer_id: &str,
    ) -> Result<loyalty_core::api::offer_admin::OfferUptake, OperatorError> {
        let url = self.api.url(&paths::admin_offer_uptake(offer_id));
        self.api.send(self.api.http.get(url)).await
    }

    /// Ends the offer now (`withdraw`: and takes it off members' phones).
    pub async fn end_offer(
        &self,
        offer_id: &str,
        withdraw: bool,
    ) -> Result<loyalty_core::api::offer_admin::OfferRecord, OperatorError> {
        let path = if withdraw {
            paths::admin_offer_withdraw(offer_id)
        } else {
            paths::admin_offer_end(offer_id)
        };
        let url = self.api.url(&path);
        self.api.send(self.api.http.post(url)).await
    }

    /// The member's devices, revoked ones too, with when each was last seen.
    pub async fn member_devices(
        &self,
        member_id: &str,
    ) -> Result<Vec<loyalty_core::api::history::DeviceView>, OperatorError> {
        let url = self.api.url(&paths::admin_member_devices(member_id));
        self.api.send(self.api.http.get(url)).await
    }

    pub async fn block(&self, member_id: &str) -> Result<(), OperatorError> {
        self.post_empty(&paths::admin_member_block(member_id)).await
    }

    pub async fn unblock(&self, member_id: &str) -> Result<(), OperatorError> {
        self.post_empty(&paths::admin_member_unblock(member_id))
            .await
    }

    /// Starts the member's documents of these kinds afresh (all four when empty): a new epoch.
    pub async fn start_epochs(
        &self,
        member_id: &str,
        docs: Vec<loyalty_core::DocKind>,
    ) -> Result<loyalty_core::api::EpochsStarted, OperatorError> {
        self.post(
            &paths::admin_member_epochs(member_id),
            &loyalty_core::api::StartEpochs { docs },
        )
        .await
    }

    pub async fn revoke_device(&self, device_id: &str) -> Result<(), OperatorError> {
        self.post_empty(&paths::admin_device_revoke(device_id))
            .await
    }

    /// The member's card number as a QR image (`svg` or `png`).
    pub async fn card_qr(&self, member_id: &str, format: &str) -> Result<Vec<u8>, OperatorError> {
        let url = self.api.url(&paths::admin_member_card_qr(member_id));
        let query = [("format", format)];
        self.api
            .send_raw(self.api.http.get(url).query(&query))
            .await
    }
}

/// The till API: scan, purchase, refund, the key feed and offline purchases.
#[derive(Clone)]
pub struct TillClient {
    api: Api,
    till_id: String,
}

impl TillClient {
    pub fn new(base_url: &str, token: &str, till_id: &str) -> Result<Self, OperatorError> {
        Ok(Self {
            api: Api::new(base_url, token)?,
            till_id: till_id.to_string(),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, OperatorError> {
        let request = self
            .api
            .http
            .post(self.api.url(path))
            .header("x-till-id", &self.till_id)
            .json(body);
        self.api.send(request).await
    }

    pub async fn scan(&self, code: &str) -> Result<ScanResponse, OperatorError> {
        self.post(
            paths::TILL_SCAN,
            &ScanRequest {
                code: code.to_string(),
            },
        )
        .await
    }

    pub async fn purchase(
        &self,
        purchase: &PurchaseRequest,
    ) -> Result<PostingResponse, OperatorError> {
        self.post(paths::TILL_PURCHASES, purchase).await
    }

    pub async fn refund(&self, refund: &RefundRequest) -> Result<PostingResponse, OperatorError> {
        self.post(paths::TILL_REFUNDS, refund).await
    }

    /// The member's PIN for a session a card number opened.
    pub async fn enter_pin(
        &self,
        session_id: &str,
        pin: &str,
    ) -> Result<loyalty_core::api::SessionStanding, OperatorError> {
        let entry = loyalty_core::api::PinEntry {
            pin: pin.to_string(),
        };
        self.post(&paths::till_session_pin(session_id), &entry)
            .await
    }

    /// One page of the key feed after `since` (`docs/checkout-code.md` §9).
    pub async fn keys(&self, since: u64, limit: Option<u32>) -> Result<KeyFeed, OperatorError> {
        let mut query = vec![("since", since.to_string())];
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let request = self
            .api
            .http
            .get(self.api.url(paths::TILL_KEYS))
            .header("x-till-id", &self.till_id)
            .query(&query);
        self.api.send(request).await
    }

    /// Flushes a purchase made offline.
    pub async fn offline_purchase(
        &self,
        purchase: &OfflinePurchaseRequest,
    ) -> Result<PostingResponse, OperatorError> {
        self.post(paths::TILL_OFFLINE_PURCHASES, purchase).await
    }
}
