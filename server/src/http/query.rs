//! Query strings: the [`Query`] extractor every handler with query parameters takes them with. A
//! query that does not fit the handler's type (an unknown parameter, a number that is not one, a
//! value outside an enumeration) is `400 malformed_query` with serde's words for what is wrong,
//! the same for every endpoint.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;

/// Extracts the query string as `T`, or refuses it as `400 malformed_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
        Ok(Query(value))
    }
}
