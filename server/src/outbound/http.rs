//! What the HTTP adapters (webhook, FCM, APNs) share: provider URLs that must be `https://`
//! (plain `http://` only to a loopback address, a gateway or test receiver beside the server), and
//! reading a bounded start of a provider's answer for its reference or its error.

/// How much of an answer's body is read; the rest is ignored.
const MAX_ANSWER_BYTES: usize = 4096;

/// The most of a provider's words an error or a reference keeps, in characters.
const MAX_WORDS: usize = 200;

/// `url` parsed, if it is `https://`, or `http://` to a loopback address.
pub fn provider_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the URL {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if is_loopback(&parsed) => Ok(parsed),
        "http" => Err(format!(
            "{url}: plain http:// is allowed to a loopback address only; use https://"
        )),
        other => Err(format!("{url}: the scheme {other:?}; use https://")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// The start of an answer's body, as text.
pub async fn read_some(mut answer: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match answer.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A provider's words, trimmed and cut short.
pub fn clip(text: &str) -> String {
    text.trim().chars().take(MAX_WORDS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_are_https_or_loopback() {
        for ok in [
            "https://gw.example/hook",
            "http://127.0.0.1:9/h",
            "http://[::1]:9/h",
            "http://localhost/h",
        ] {
            assert!(provider_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://gw.example/hook",
            "http://10.0.0.1/h",
            "ftp://gw.example",
            "not a url",
        ] {
            assert!(provider_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn words_are_trimmed_and_cut() {
        assert_eq!(clip("  ok \n"), "ok");
        assert_eq!(clip(&"x".repeat(500)).len(), MAX_WORDS);
    }
}
