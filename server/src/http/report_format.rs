//! A report's two answers: JSON, or with `format=csv` a CSV attachment for a spreadsheet. The
//! format is parsed with the query, so a bad one is refused before any work; every report and the
//! offer uptake answer through [`answer`].

use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::json::Json;

/// How a report is answered; parsed with the query, so a bad format is refused before any work.
#[derive(serde::Deserialize, utoipa::ToSchema, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
}

/// The report as JSON, or with `format=csv` as a CSV attachment named `file`.
pub fn answer<T: serde::Serialize>(
    format: Format,
    report: T,
    csv: impl Fn(&T) -> String,
    file: &str,
) -> Result<Response, ApiError> {
    if format == Format::Json {
        return Ok(Json(report).into_response());
    }
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        csv(&report),
    )
        .into_response())
}
