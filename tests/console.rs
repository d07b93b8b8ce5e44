//! The web console (issue 15): served pages and their headers, token sign-in, sessions that end on
//! sign-out and on revocation, CSRF on every state change, role checks behind typed URLs; and, in
//! a real browser (Debian's chromium through chromedriver), search, the player and its waveform
//! against the ledger, holds, exports verified offline, live listening through a card payment,
//! OIDC sign-in against a real OpenID provider (node's `oidc-provider`), and axe-core's WCAG 2.2
//! A/AA check of every page.

#[path = "console/calls.rs"]
mod calls;
mod common;
#[path = "console/webdriver.rs"]
mod webdriver;

use std::time::Duration;

use common::live::Live;
use serde_json::{Value, json};
use tokio::net::TcpStream;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A cookie-keeping HTTP client of the console.
struct Web {
    addr: std::net::SocketAddr,
    cookies: Vec<(String, String)>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        common::header(&self.headers, name)
    }
}

impl Web {
    fn new(live: &Live) -> Web {
        Web { addr: live.public, cookies: Vec::new() }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Answer {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/x-www-form-urlencoded")];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        headers.extend_from_slice(extra);
        let (status, headers, body) =
            common::exchange(stream, method, path, &headers, body.as_bytes()).await;
        for (k, v) in &headers {
            if k == "set-cookie" {
                let pair = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = pair.split_once('=') {
                    self.cookies.retain(|(n, _)| n != name);
                    if !value.is_empty() {
                        self.cookies.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
        }
        Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], &[]).await
    }

    /// Signs in with `token` through the sign-in form.
    async fn sign_in(&mut self, token: &str) -> Answer {
        let page = self.get("/console/sign-in").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let binding = self.cookie("__Host-callvault-signin").expect("a sign-in cookie").to_owned();
        self.send("POST", "/console/sign-in", &[("token", token), ("csrf", &binding), ("next", "/console/search")], &[]).await
    }

    /// The CSRF token of the page at `path`.
    async fn csrf(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let needle = "name=\"csrf-token\" content=\"";
        let at = page.body.find(needle).expect("a csrf meta") + needle.len();
        page.body[at..at + 43].to_owned()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_headers_and_roles() {
    let live = Live::start("").await;
    let id = calls::record(&live, "CA-sec-1", "+441744676789", false).await;
    let mut web = Web::new(&live);

    // not signed in: every page goes to the sign-in page, which carries the headers
    let r = web.get("/console/search").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/sign-in?next=%2Fconsole%2Fsearch"));
    let r = web.get("/console/sign-in").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(!r.body.contains("<script>") && !r.body.contains("style="), "no inline script or style");

    // a wrong token, a sign-in without the form's binding, a telephony token: refused
    let r = web.sign_in("cvt_not-a-token").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("not valid"));
    let r = web.send("POST", "/console/sign-in", &[("token", &live.supervisor), ("csrf", "x")], &[]).await;
    assert_eq!(r.status, 403, "login csrf: {}", r.body);
    let r = web.sign_in(&live.telephony).await;
    assert_eq!(r.status, 401);
    assert!(web.cookie("__Host-callvault").is_none());

    // a supervisor signs in: a host-only, Secure, HttpOnly, SameSite=Strict cookie with an expiry
    let r = web.sign_in(&live.supervisor).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/console/search"));
    let set = r.headers.iter().find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-callvault=")).expect("session cookie").1.clone();
    for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains(&live.supervisor), "the cookie is not the token");

    // every page carries the CSP and loads nothing from another origin
    let csrf = web.csrf("/console/search").await;
    for path in [
        "/console/search?caller=01744676789&reason=complaint",
        &format!("/console/recordings/{id}"),
        &format!("/console/recordings/{id}?reason=quality"),
        "/console/holds",
        "/console/exports",
        "/console/live",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(!r.body.contains(attr), "{path} loads from elsewhere: {attr}");
        }
    }
    let r = web.get("/console/search?caller=01744676789&reason=complaint").await;
    let results = &r.body[r.body.find("id=\"results-heading\"").expect("results")..];
    assert!(results.contains(&id), "the recording is found");
    let masked = callvault::domain::mask_e164("+441744676789");
    assert!(results.contains(&masked), "masked as the API masks it ({masked}): {results}");
    assert!(!results.contains("1744676789"), "no whole number for a supervisor");

    // a state change without the CSRF token, with another, or sent by another site: refused
    let hold = |csrf: &str| vec![("csrf", csrf.to_owned()), ("reference", "C-1".to_owned()), ("reason", "complaint".to_owned())];
    let path = format!("/console/recordings/{id}/hold");
    let f: Vec<(&str, String)> = hold("");
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(web.send("POST", &path, &refs[1..], &[]).await.status, 403);
    assert_eq!(web.send("POST", &path, &refs, &[]).await.status, 403);
    let f = hold(&csrf);
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(web.send("POST", &path, &refs, &[("Sec-Fetch-Site", "cross-site")]).await.status, 403);
    assert!(live.catalog.holds(true).await.expect("holds").is_empty(), "nothing was held");
    let r = web.send("POST", &path, &refs, &[("Sec-Fetch-Site", "same-origin")]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(live.catalog.holds(true).await.expect("holds").len(), 1);

    // a supervisor finds no compliance controls, and a typed URL gets the API's 403
    let r = web.get(&format!("/console/recordings/{id}")).await;
    assert!(!r.body.contains("Erase recording") && !r.body.contains("/console/audit"), "no compliance controls");
    for path in ["/console/audit", "/console/pci-review"] {
        assert_eq!(web.get(path).await.status, 403, "{path}");
    }
    for action in ["erase", "restrict", "excise"] {
        let r = web.send("POST", &format!("/console/recordings/{id}/{action}"), &[("csrf", &csrf), ("reason", "x"), ("segment", "0")], &[]).await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
    }
    let r = web.send("POST", "/console/holds/C-1/release", &[("csrf", &csrf), ("reason", "x")], &[]).await;
    assert_eq!(r.status, 403);
    let r = web.send("POST", "/console/audit/verify", &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(live.catalog.holds(true).await.expect("holds").len(), 1, "still held");

    // signing out ends the session: the same cookie is refused afterwards
    let stolen = web.cookie("__Host-callvault").expect("cookie").to_owned();
    let r = web.send("POST", "/console/sign-out", &[("csrf", &csrf)], &[]).await;
    assert_eq!(r.status, 303);
    web.cookies.push(("__Host-callvault".into(), stolen));
    assert_eq!(web.get("/console/search").await.status, 303, "a signed-out cookie is refused");

    // revoking the token ends its session at the next request
    let mut web = Web::new(&live);
    let (token_id, token) = {
        let (id, secret, hash) = callvault::api::auth::mint_token();
        live.catalog
            .insert_token(&callvault::catalog::TokenRow {
                id: id.clone(), name: "jo".into(), role: "supervisor".into(), hash,
                created_at: common::live::t0(), revoked_at: None,
            })
            .await
            .expect("token");
        (id, secret.to_string())
    };
    assert_eq!(web.sign_in(&token).await.status, 303);
    assert_eq!(web.get("/console/holds").await.status, 200);
    assert!(live.catalog.revoke_token(&token_id, live.now()).await.expect("revoke"));
    assert_eq!(web.get("/console/holds").await.status, 303, "a revoked token's session is refused");

    // a session past its lifetime ends too (on the daemon's clock)
    let mut web = Web::new(&live);
    assert_eq!(web.sign_in(&live.supervisor).await.status, 303);
    live.advance_ms(8 * 3600 * 1000 + 1000);
    assert_eq!(web.get("/console/holds").await.status, 303, "an expired session is refused");

    // every console access is in the audit chain: the sign-ins, the search with its reason, the hold
    let entries = live.catalog.audit_after(0, 10_000).await.expect("audit");
    let has = |action: &str, reason: Option<&str>| entries.iter().any(|e| e.entry.action == action && (reason.is_none() || e.entry.reason.as_deref() == reason));
    assert!(has("console.sign_in", None) && has("console.sign_out", None));
    assert!(has("recording.search", Some("complaint")));
    assert!(has("hold.place", None) || entries.iter().any(|e| e.entry.action.starts_with("hold")), "the hold is audited");
    live.stop().await;
}
