//! Errors as the API promises: every rejection is `application/problem+json` with a stable code,
//! also those made before a handler runs (a body over the limit, a method a route does not take).

mod common;

use common::live::Live;
use tokio::net::TcpStream;

async fn send(
    live: &Live,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let s = TcpStream::connect(live.public).await.expect("connect");
    let auth = format!("Bearer {}", live.supervisor);
    let (status, headers, body) = common::exchange(
        s,
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: not json: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, headers, json)
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_over_the_limit_and_wrong_methods_are_problem_json() {
    let live = Live::start("").await;
    let big = vec![b'x'; 70 * 1024];
    for path in ["/v1/holds", "/v1/exports", "/v1/events"] {
        let (status, headers, json) = send(&live, "POST", path, &big).await;
        assert_eq!(status, 413, "{path}: {json}");
        assert_eq!(
            common::header(&headers, "content-type"),
            Some("application/problem+json"),
            "{path}"
        );
        assert_eq!(json["code"], "payload_too_large", "{path}: {json}");
        assert_eq!(json["status"], 413);
    }
    let (status, headers, json) = send(&live, "PUT", "/v1/holds", b"{}").await;
    assert_eq!(status, 405, "{json}");
    assert_eq!(json["code"], "method_not_allowed");
    assert!(common::header(&headers, "allow").is_some(), "{headers:?}");
    // a handler's own errors are untouched
    let (status, _, json) = send(&live, "POST", "/v1/holds", b"{not json").await;
    assert_eq!(status, 400);
    assert_eq!(json["code"], "bad_body");
    live.stop().await;
}
