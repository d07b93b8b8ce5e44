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
        Web {
            addr: live.public,
            cookies: Vec::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Answer {
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
        let mut headers: Vec<(&str, &str)> =
            vec![("Content-Type", "application/x-www-form-urlencoded")];
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
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, &[], &[]).await
    }

    /// Signs in with `token` through the sign-in form.
    async fn sign_in(&mut self, token: &str) -> Answer {
        let page = self.get("/console/sign-in").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let binding = self
            .cookie("__Host-callvault-signin")
            .expect("a sign-in cookie")
            .to_owned();
        self.send(
            "POST",
            "/console/sign-in",
            &[
                ("token", token),
                ("csrf", &binding),
                ("next", "/console/search"),
            ],
            &[],
        )
        .await
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
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
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
    assert_eq!(
        r.header("location"),
        Some("/console/sign-in?next=%2Fconsole%2Fsearch")
    );
    let r = web.get("/console/sign-in").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        !r.body.contains("<script>") && !r.body.contains("style="),
        "no inline script or style"
    );

    // a wrong token, a sign-in without the form's binding, a telephony token: refused
    let r = web.sign_in("cvt_not-a-token").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("not valid"));
    let r = web
        .send(
            "POST",
            "/console/sign-in",
            &[("token", &live.supervisor), ("csrf", "x")],
            &[],
        )
        .await;
    assert_eq!(r.status, 403, "login csrf: {}", r.body);
    let r = web.sign_in(&live.telephony).await;
    assert_eq!(r.status, 401);
    assert!(web.cookie("__Host-callvault").is_none());

    // a supervisor signs in: a host-only, Secure, HttpOnly, SameSite=Strict cookie with an expiry
    let r = web.sign_in(&live.supervisor).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/console/search"));
    let set = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("__Host-callvault="))
        .expect("session cookie")
        .1
        .clone();
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=28800",
    ] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(
        !set.contains(&live.supervisor),
        "the cookie is not the token"
    );

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
            assert!(
                !r.body.contains(attr),
                "{path} loads from elsewhere: {attr}"
            );
        }
    }
    let r = web
        .get("/console/search?caller=01744676789&reason=complaint")
        .await;
    let results = &r.body[r.body.find("id=\"results-heading\"").expect("results")..];
    assert!(results.contains(&id), "the recording is found");
    let masked = callvault::domain::mask_e164("+441744676789");
    assert!(
        results.contains(&masked),
        "masked as the API masks it ({masked}): {results}"
    );
    assert!(
        !results.contains("1744676789"),
        "no whole number for a supervisor"
    );

    // a queue narrows the search; bad input gets the form back with what is wrong, and loses nothing
    let r = web
        .get("/console/search?caller=01744676789&queue=housing&reason=complaint")
        .await;
    assert!(r.body.contains("0 recordings on this page"), "{}", r.body);
    let r = web
        .get("/console/search?caller=01744676789&queue=council-tax&reason=complaint")
        .await;
    assert!(r.body.contains(&format!("data-recording=\"{id}\"")));
    let r = web
        .get("/console/search?caller=not-a-number&line=%2B441744000111&reason=complaint")
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("There is a problem") && r.body.contains("caller:"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("value=\"not-a-number\"") && r.body.contains("value=\"+441744000111\""),
        "the form keeps what was typed"
    );
    let r = web
        .get("/console/search?caller=01744676789&from=2026-13-40&reason=complaint")
        .await;
    assert!(r.body.contains("The from date must be a real date"));
    let r = web.get("/console/search?caller=01744676789&reason=").await;
    assert!(r.body.contains("Enter the reason for this search"));
    assert!(
        !r.body.contains("id=\"results-heading\""),
        "no search without a reason"
    );
    for path in [
        "/console/recordings/not-an-id",
        "/console/recordings/0190f1a4-0000-7000-8000-000000000000",
        "/console/exports/nope",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-security-policy"), Some(CSP));
    }
    let r = web.get(&format!("/console/recordings/{id}/peaks")).await;
    assert_eq!(r.status, 400, "the waveform needs a reason: {}", r.body);
    let r = web.get(&format!("/console/recordings/{id}/audio")).await;
    assert_eq!(r.status, 400, "playing needs a reason");
    let r = web
        .send(
            "GET",
            &format!("/console/recordings/{id}/audio?reason=check"),
            &[],
            &[("Range", "bytes=100-199")],
        )
        .await;
    assert_eq!(r.status, 206, "ranges are served");
    assert_eq!(
        r.header("content-range")
            .map(|v| v.starts_with("bytes 100-199/")),
        Some(true)
    );

    // a state change without the CSRF token, with another, or sent by another site: refused
    let hold = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("reference", "C-1".to_owned()),
            ("reason", "complaint".to_owned()),
        ]
    };
    let path = format!("/console/recordings/{id}/hold");
    let f: Vec<(&str, String)> = hold("");
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(web.send("POST", &path, &refs[1..], &[]).await.status, 403);
    assert_eq!(web.send("POST", &path, &refs, &[]).await.status, 403);
    let f = hold(&csrf);
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        web.send("POST", &path, &refs, &[("Sec-Fetch-Site", "cross-site")])
            .await
            .status,
        403
    );
    assert!(
        live.catalog.holds(true).await.expect("holds").is_empty(),
        "nothing was held"
    );
    let r = web
        .send("POST", &path, &refs, &[("Sec-Fetch-Site", "same-origin")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(live.catalog.holds(true).await.expect("holds").len(), 1);

    // a supervisor finds no compliance controls, and a typed URL gets the API's 403
    let r = web.get(&format!("/console/recordings/{id}")).await;
    assert!(
        !r.body.contains("Erase recording") && !r.body.contains("/console/audit"),
        "no compliance controls"
    );
    for path in ["/console/audit", "/console/pci-review"] {
        assert_eq!(web.get(path).await.status, 403, "{path}");
    }
    for action in ["erase", "restrict", "excise"] {
        let r = web
            .send(
                "POST",
                &format!("/console/recordings/{id}/{action}"),
                &[("csrf", &csrf), ("reason", "x"), ("segment", "0")],
                &[],
            )
            .await;
        assert_eq!(r.status, 403, "{action}: {}", r.body);
    }
    let r = web
        .send(
            "POST",
            "/console/holds/C-1/release",
            &[("csrf", &csrf), ("reason", "x")],
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = web
        .send("POST", "/console/audit/verify", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        live.catalog.holds(true).await.expect("holds").len(),
        1,
        "still held"
    );

    // restricted by compliance (through the console), the recording is no longer heard or drawn
    // for a supervisor: the API's rule
    let mut dpo = Web::new(&live);
    assert_eq!(dpo.sign_in(&live.compliance).await.status, 303);
    let dpo_csrf = dpo.csrf("/console/search").await;
    let r = dpo
        .send(
            "POST",
            &format!("/console/recordings/{id}/restrict"),
            &[("csrf", &dpo_csrf), ("reason", "")],
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(
        r.header("location")
            .is_some_and(|l| l.contains("Not%20done")),
        "a reason is required: {:?}",
        r.header("location")
    );
    let r = dpo
        .send(
            "POST",
            &format!("/console/recordings/{id}/restrict"),
            &[("csrf", &dpo_csrf), ("reason", "data subject asked")],
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(
        live.catalog
            .recording(id.parse().expect("id"))
            .await
            .expect("row")
            .expect("row")
            .restricted
    );
    for path in [
        format!("/console/recordings/{id}/peaks?reason=x"),
        format!("/console/recordings/{id}/audio?reason=x"),
    ] {
        let r = web.get(&path).await;
        assert_eq!(r.status, 409, "{path}: {}", r.body);
    }
    assert_eq!(
        dpo.get(&format!("/console/recordings/{id}/peaks?reason=x"))
            .await
            .status,
        200
    );

    // signing out ends the session: the same cookie is refused afterwards
    let stolen = web.cookie("__Host-callvault").expect("cookie").to_owned();
    let r = web
        .send("POST", "/console/sign-out", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(r.status, 303);
    web.cookies.push(("__Host-callvault".into(), stolen));
    assert_eq!(
        web.get("/console/search").await.status,
        303,
        "a signed-out cookie is refused"
    );

    // revoking the token ends its session at the next request
    let mut web = Web::new(&live);
    let (token_id, token) = {
        let (id, secret, hash) = callvault::api::auth::mint_token();
        live.catalog
            .insert_token(&callvault::catalog::TokenRow {
                id: id.clone(),
                name: "jo".into(),
                role: "supervisor".into(),
                hash,
                created_at: common::live::t0(),
                revoked_at: None,
            })
            .await
            .expect("token");
        (id, secret.to_string())
    };
    assert_eq!(web.sign_in(&token).await.status, 303);
    assert_eq!(web.get("/console/holds").await.status, 200);
    assert!(
        live.catalog
            .revoke_token(&token_id, live.now())
            .await
            .expect("revoke")
    );
    assert_eq!(
        web.get("/console/holds").await.status,
        303,
        "a revoked token's session is refused"
    );

    // a session past its lifetime ends too (on the daemon's clock)
    let mut web = Web::new(&live);
    assert_eq!(web.sign_in(&live.supervisor).await.status, 303);
    live.advance_ms(8 * 3600 * 1000 + 1000);
    assert_eq!(
        web.get("/console/holds").await.status,
        303,
        "an expired session is refused"
    );

    // every console access is in the audit chain: the sign-ins, the search with its reason, the hold
    let entries = live.catalog.audit_after(0, 10_000).await.expect("audit");
    let has = |action: &str, reason: Option<&str>| {
        entries.iter().any(|e| {
            e.entry.action == action && (reason.is_none() || e.entry.reason.as_deref() == reason)
        })
    };
    assert!(has("console.sign_in", None) && has("console.sign_out", None));
    assert!(has("recording.search", Some("complaint")));
    assert!(
        has("hold.place", None) || entries.iter().any(|e| e.entry.action.starts_with("hold")),
        "the hold is audited"
    );
    live.stop().await;
}

// ---------------------------------------------------------------------------------------------
// In a real browser

/// Runs axe-core (from npm, tests/run.sh installs it) on the page and fails on any WCAG 2.2 A or
/// AA violation.
async fn axe(b: &webdriver::Browser, page: &str) {
    let v = axe_violations(b).await;
    assert_eq!(v, json!([]), "axe found WCAG 2.2 A/AA violations on {page}");
}

async fn axe_violations(b: &webdriver::Browser) -> Value {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/console/node_modules/axe-core/axe.min.js"
    ))
    .expect("axe-core is installed (tests/run.sh: npm ci in tests/console)");
    b.js(
        &format!("{src}\n;window.axe = window.axe || axe; return true;"),
        json!([]),
    )
    .await;
    b
        .js_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a','wcag2aa','wcag21a','wcag21aa','wcag22a','wcag22aa'] } })\
               .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')) }))))\
               .catch(e => done([{ id: 'axe-error', impact: String(e), nodes: [] }]));",
            json!([]),
        )
        .await
}

/// Checks the page loaded nothing from another origin and fits a narrow window's width.
async fn same_origin_only(b: &webdriver::Browser, page: &str) {
    let v = b
        .js(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => new URL(n).origin !== location.origin);",
            json!([]),
        )
        .await;
    assert_eq!(v, json!([]), "{page} loaded from another origin");
}

async fn shot(b: &webdriver::Browser, name: &str) {
    if std::env::var_os("CONSOLE_SCREENSHOTS").is_some() {
        let png = b.screenshot().await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("docs/console-{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
    }
}

/// Submits the form that holds `field`.
async fn submit(b: &webdriver::Browser, field: &str) {
    b.js(
        "const f = document.querySelector(arguments[0]).form; f.querySelector('button[type=submit]').click(); return true;",
        json!([field]),
    )
    .await;
}

async fn wait_url(b: &webdriver::Browser, part: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let u = b.url().await;
        if u.contains(part) && b.js("return document.readyState", json!([])).await == "complete" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not at {part}: {u}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(b: &webdriver::Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/console/")).await;
    wait_url(b, "/console/sign-in").await;
    b.fill("#token", token).await;
    submit(b, "#token").await;
    wait_url(b, "/console/search").await;
    assert!(b.text("header").await.contains("Signed in as"), "signed in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_supervisor_and_compliance() {
    let Some((chromium, chromedriver)) = webdriver::binaries() else {
        return;
    };
    let live = Live::start("").await;
    let paid = calls::record(&live, "CA-web-pay", "+441744676789", true).await;
    let plain = calls::record(&live, "CA-web-plain", "01744 676789", false).await;
    let other = calls::record(&live, "CA-web-other", "+441514960000", false).await;
    let driver = webdriver::Driver::start(&chromedriver).await;
    let downloads = tempfile::tempdir().expect("tempdir");
    let b = driver.session(&chromium, downloads.path()).await;
    let base = format!("http://{}", live.public);

    // sign in with a token (the session cookie is Secure: Chromium keeps it on loopback)
    b.goto(&format!("{base}/console/")).await;
    wait_url(&b, "/console/sign-in").await;
    axe(&b, "sign-in").await;
    shot(&b, "sign-in").await;
    // the check is live: an unlabelled field is caught
    b.js("const i = document.createElement('input'); i.id = 'unlabelled'; document.querySelector('main').appendChild(i); return true;", json!([])).await;
    let v = axe_violations(&b).await;
    assert!(
        v.to_string().contains("label"),
        "axe catches an unlabelled field: {v}"
    );
    b.js(
        "document.getElementById('unlabelled').remove(); return true;",
        json!([]),
    )
    .await;
    sign_in(&b, &base, &live.supervisor).await;
    assert!(
        !b.exists("a[href='/console/audit']").await,
        "a supervisor has no audit link"
    );

    // search a caller in three usual forms; each finds both of their calls and not the other
    for form in ["01744 676789", "+44 1744 676789", "0044 (0)1744-676789"] {
        b.goto(&format!("{base}/console/search")).await;
        b.fill("#caller", form).await;
        b.fill("#reason", "complaint C-42").await;
        submit(&b, "#caller").await;
        wait_url(&b, "reason=").await;
        let found = b.js("return [...document.querySelectorAll('tr[data-recording]')].map(r => r.dataset.recording).sort()", json!([])).await;
        let mut want = vec![paid.clone(), plain.clone()];
        want.sort();
        assert_eq!(found, json!(want), "search by {form}");
    }
    assert!(!b.text("table.results").await.contains(&other));
    axe(&b, "search results").await;
    same_origin_only(&b, "search").await;
    shot(&b, "search").await;

    // the recording page: the reason first, then the player and the waveform
    b.goto(&format!("{base}/console/recordings/{paid}")).await;
    assert!(!b.exists("#player").await, "no player before a reason");
    axe(&b, "recording (before reason)").await;
    b.fill("#play-reason", "complaint C-42").await;
    submit(&b, "#play-reason").await;
    wait_url(&b, "reason=complaint").await;
    b.wait_for(
        "return document.getElementById('wave-canvas').dataset.ready",
        "waveform drawn",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        b.js(
            "return document.getElementById('wave-canvas').dataset.ready",
            json!([])
        )
        .await,
        "true"
    );
    // the pause marker sits where the ledger says: its payment pause from the recording's start
    let row = live.recording("CA-web-pay").await.expect("row");
    let ledger = live.catalog.ledger(row.id).await.expect("ledger");
    let pause = ledger
        .iter()
        .find(|e| e.kind == "pause")
        .expect("a pause in the ledger");
    let from: Value = serde_json::from_str(&pause.details).expect("details");
    let from =
        chrono::DateTime::parse_from_rfc3339(from["from"].as_str().expect("from")).expect("time");
    let resume = ledger
        .iter()
        .find(|e| e.kind == "resume")
        .expect("a resume");
    let at: Value = serde_json::from_str(&resume.details).expect("details");
    let at = chrono::DateTime::parse_from_rfc3339(at["at"].as_str().expect("at")).expect("time");
    let want_start = (from.with_timezone(&chrono::Utc) - row.started_at).num_milliseconds();
    let want_len = (at - from).num_milliseconds();
    let marks = b.js("return [...document.querySelectorAll('#wave-canvas rect.marker')].map(r => ({ cls: r.getAttribute('class'), start: +r.dataset.startMs, played: +r.dataset.playedMs, len: +r.dataset.lengthMs, x: +r.getAttribute('x'), w: +r.getAttribute('width') }))", json!([])).await;
    let marks = marks.as_array().expect("markers");
    assert_eq!(marks.len(), 1, "one marker: {marks:?}");
    let m = &marks[0];
    assert_eq!(m["cls"], "marker pause");
    assert!(
        (m["start"].as_i64().expect("start") - want_start).abs() <= 20,
        "marker at {m} vs ledger {want_start} ms"
    );
    assert!(
        (m["len"].as_i64().expect("len") - want_len).abs() <= 20,
        "marker length {m} vs ledger {want_len} ms"
    );
    // and the audio under it is the quiet pause tone, while around it the call is loud
    let dur = b
        .js(
            "return +document.querySelector('#wave-canvas svg').dataset.durationMs",
            json!([]),
        )
        .await
        .as_f64()
        .expect("duration");
    let peaks = b.js("return [...document.querySelectorAll('#wave-canvas g[data-channel=\"0\"] rect')].map(r => +r.dataset.peak)", json!([])).await;
    let peaks: Vec<f64> = peaks
        .as_array()
        .expect("peaks")
        .iter()
        .map(|p| p.as_f64().expect("peak"))
        .collect();
    let bucket = |ms: f64| ((ms / dur) * peaks.len() as f64) as usize;
    let (s, e) = (
        m["start"].as_f64().expect("s"),
        m["start"].as_f64().expect("s") + m["played"].as_f64().expect("p"),
    );
    let inside = &peaks[bucket(s) + 2..bucket(e) - 2];
    assert!(
        inside.iter().all(|p| *p <= 0.15),
        "quiet under the marker: {inside:?}"
    );
    assert!(
        peaks[bucket(s / 2.0)] > 0.3 && peaks[bucket((e + dur) / 2.0)] > 0.3,
        "loud around it"
    );
    // the ledger's table lists the same event
    assert!(b.text("#markers").await.contains("Card payment pause"));
    axe(&b, "recording").await;
    same_origin_only(&b, "recording").await;
    shot(&b, "recording").await;
    // play to the end (fast and muted): the <audio> element streams it through Range
    b.js("const a = document.getElementById('player'); a.muted = true; a.playbackRate = 4; a.play(); return true;", json!([])).await;
    b.wait_for(
        "return document.getElementById('player').ended",
        "the audio reaches ended",
        Duration::from_secs(30),
    )
    .await;
    let plays = live.catalog.audit_after(0, 100_000).await.expect("audit");
    assert!(plays.iter().any(|e| e.entry.action == "recording.play"
        && e.entry.reason.as_deref() == Some("complaint C-42")
        && e.entry.subject == paid));
    assert!(
        plays
            .iter()
            .any(|e| e.entry.action == "recording.waveform" && e.entry.subject == paid)
    );

    // place a hold on it
    b.fill("#hold-reference", "C-42").await;
    b.fill("#hold-reason", "complaint about the call").await;
    submit(&b, "#hold-reference").await;
    wait_url(&b, "notice=").await;
    assert!(b.text("#holds").await.contains("C-42"));
    assert!(b.text(".notice").await.contains("Hold C-42 placed"));
    let held = live
        .catalog
        .holds_for_recording(row.id)
        .await
        .expect("holds");
    assert_eq!(held.len(), 1);

    // subject access: an export for the caller, watched, downloaded, verified offline
    b.goto(&format!("{base}/console/exports")).await;
    axe(&b, "exports").await;
    b.fill("#x-caller", "01744 676789").await;
    b.fill("#x-sar", "SAR-2026-7").await;
    b.fill("#x-reason", "subject access request").await;
    submit(&b, "#x-caller").await;
    wait_url(&b, "/console/exports/").await;
    b.wait_for(
        "return !document.getElementById('export-download-line').hidden",
        "export ready",
        Duration::from_secs(30),
    )
    .await;
    axe(&b, "export progress").await;
    shot(&b, "export").await;
    let zip = b
        .js_async(
            "const done = arguments[arguments.length - 1];\
             fetch(document.getElementById('export-download').href).then(r => r.arrayBuffer()).then(buf => {\
               let s = ''; const u = new Uint8Array(buf); for (let i = 0; i < u.length; i++) s += String.fromCharCode(u[i]); done(btoa(s)); });",
            json!([]),
        )
        .await;
    use base64::Engine;
    let zip = base64::engine::general_purpose::STANDARD
        .decode(zip.as_str().expect("b64"))
        .expect("zip");
    let path = downloads.path().join("bundle.zip");
    std::fs::write(&path, &zip).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callvault"))
        .arg("verify")
        .arg(&path)
        .output()
        .expect("verify runs");
    assert!(
        out.status.success(),
        "the bundle verifies: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let wavs = zip::ZipArchive::new(std::io::Cursor::new(&zip))
        .expect("zip")
        .file_names()
        .filter(|n| n.ends_with(".wav"))
        .count();
    assert_eq!(wavs, 2, "both of the caller's recordings");

    // holds page, live page: accessible
    b.goto(&format!("{base}/console/holds")).await;
    assert!(
        !b.exists("button.release, form[action$='/release']").await,
        "a supervisor cannot release"
    );
    axe(&b, "holds").await;
    b.goto(&format!("{base}/console/live")).await;
    axe(&b, "live").await;
    // completeness: the calls of this test are on the roster, counted by the API's report
    b.goto(&format!("{base}/console/completeness")).await;
    let calls: u64 = b
        .text("#totals td[data-state='calls']")
        .await
        .trim()
        .parse()
        .expect("a count");
    assert!(calls >= 1, "the recorded calls are counted: {calls}");
    axe(&b, "completeness").await;
    // a typed compliance URL: 403
    b.goto(&format!("{base}/console/audit")).await;
    assert_eq!(b.text("h1").await, "You do not have access");
    b.goto(&format!("{base}/console/pci-review")).await;
    assert_eq!(b.text("h1").await, "You do not have access");
    axe(&b, "403").await;

    // a narrow window: nothing wider than the screen
    b.resize(360, 800).await;
    for page in ["/console/search", &format!("/console/recordings/{paid}")] {
        b.goto(&format!("{base}{page}")).await;
        let fits = b
            .js(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1",
                json!([]),
            )
            .await;
        assert_eq!(fits, json!(true), "{page} fits 360 px");
    }
    b.resize(1280, 1000).await;

    // sign out, then as compliance: the controls are there and work
    b.click("button.link").await;
    wait_url(&b, "/console/sign-in").await;
    b.goto(&format!("{base}/console/holds")).await;
    wait_url(&b, "/console/sign-in").await;
    sign_in(&b, &base, &live.compliance).await;
    b.goto(&format!("{base}/console/recordings/{plain}")).await;
    assert!(b.exists("#compliance").await);
    axe(&b, "recording (compliance)").await;
    shot(&b, "recording-compliance").await;
    b.fill("#restrict-reason", "data subject asked").await;
    submit(&b, "#restrict-reason").await;
    wait_url(&b, "notice=").await;
    assert!(b.text("#status").await.contains("restricted"));
    b.goto(&format!("{base}/console/holds")).await;
    b.fill("#release-C-42", "complaint closed").await;
    submit(&b, "#release-C-42").await;
    wait_url(&b, "notice=").await;
    assert!(b.text(".notice").await.contains("Hold C-42 released"));
    assert!(live.catalog.holds(true).await.expect("holds").is_empty());
    axe(&b, "holds (compliance)").await;
    b.goto(&format!("{base}/console/audit?action=recording.play"))
        .await;
    let actions = b.js("return [...document.querySelectorAll('#audit-entries tr[data-action]')].map(r => r.dataset.action)", json!([])).await;
    assert!(
        actions
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x == "recording.play")),
        "{actions}"
    );
    b.click("#verify").await;
    wait_url(&b, "notice=").await;
    assert!(
        b.text("#verify-result")
            .await
            .contains("The audit chain is intact"),
        "{}",
        b.text("#verify-result").await
    );
    axe(&b, "audit").await;
    shot(&b, "audit").await;
    b.goto(&format!("{base}/console/pci-review")).await;
    assert!(b.exists("#no-review").await);
    axe(&b, "pci review").await;
    b.close().await;
    drop(driver);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_live_listen_shows_the_pause_and_hears_nothing_in_it() {
    use common::audio::tone;
    let Some((chromium, chromedriver)) = webdriver::binaries() else {
        return;
    };
    let live = Live::start("").await;
    let driver = webdriver::Driver::start(&chromedriver).await;
    let downloads = tempfile::tempdir().expect("tempdir");
    let b = driver.session(&chromium, downloads.path()).await;
    let base = format!("http://{}", live.public);
    sign_in(&b, &base, &live.supervisor).await;

    let call = "CA-web-live";
    let mut ws = calls::begin(&live, call, "+441744676789").await;
    live.stream(&mut ws, &tone(calls::FORMAT, 1000.0, 500))
        .await;
    b.goto(&format!("{base}/console/live")).await;
    let listed = b.text("#live-calls").await;
    let masked = callvault::domain::mask_e164("+441744676789");
    assert!(
        listed.contains(call) && listed.contains(&masked),
        "{listed}"
    );
    b.goto(&format!(
        "{base}/console/live?call_id={call}&reason=quality%20check"
    ))
    .await;
    b.click("#live-start").await;
    b.wait_for(
        "return document.getElementById('live').dataset.state === 'listening'",
        "listening",
        Duration::from_secs(10),
    )
    .await;
    // audio flows once the look-back window has passed
    live.stream(&mut ws, &tone(calls::FORMAT, 1000.0, 4000))
        .await;
    b.wait_for(
        "return +document.getElementById('live').dataset.frames > 0",
        "audio heard",
        Duration::from_secs(10),
    )
    .await;
    axe(&b, "live (listening)").await;
    // a card payment: the page says paused, and no audio comes while it lasts
    let (s, body) = live.event(call, "payment.started", None, json!({})).await;
    assert_eq!(s, 200, "{body}");
    // the listener is a look-back window behind the call: the pause shows once the call gets there
    live.stream(&mut ws, &tone(calls::FORMAT, 2000.0, 4000))
        .await;
    b.wait_for(
        "return document.getElementById('live').dataset.state === 'paused'",
        "paused shown",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        b.text("#live-state").await.starts_with("Paused"),
        "{}",
        b.text("#live-state").await
    );
    let at_pause = b
        .js(
            "return +document.getElementById('live').dataset.frames",
            json!([]),
        )
        .await;
    shot(&b, "live").await;
    live.stream(&mut ws, &tone(calls::FORMAT, 2000.0, 4000))
        .await;
    calls::settle(&mut ws).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.js(
            "return +document.getElementById('live').dataset.frames",
            json!([])
        )
        .await,
        at_pause,
        "no audio while paused"
    );
    assert_eq!(
        b.js(
            "return document.getElementById('live').dataset.state",
            json!([])
        )
        .await,
        "paused"
    );
    let (s, body) = live.event(call, "payment.ended", None, json!({})).await;
    assert_eq!(s, 200, "{body}");
    // capture resumes pci.max_latency (1 s) after the event, and a listener hears audio a
    // look-back window (3.5 s) after it arrived
    live.stream(&mut ws, &tone(calls::FORMAT, 1000.0, 6000))
        .await;
    b.wait_for(
        "return document.getElementById('live').dataset.state === 'listening'",
        "resumed shown",
        Duration::from_secs(10),
    )
    .await;
    b.wait_for(
        &format!("return +document.getElementById('live').dataset.frames > {at_pause}"),
        "audio again after the pause",
        Duration::from_secs(10),
    )
    .await;
    calls::end(&live, call, ws).await;
    b.wait_for(
        "return document.getElementById('live').dataset.state === 'closed'",
        "the end shown",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(b.text("#live-state").await, "The call has ended");
    let audit = live.catalog.audit_after(0, 10_000).await.expect("audit");
    assert!(
        audit.iter().any(|e| e.entry.action == "call.listen"
            && e.entry.reason.as_deref() == Some("quality check"))
    );
    b.close().await;
    drop(driver);
    live.stop().await;
}

/// The `oidc-provider` of tests/console (npm), run by node, until dropped.
struct Provider(std::process::Child);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_oidc_sign_in_against_a_real_provider() {
    let Some((chromium, chromedriver)) = webdriver::binaries() else {
        return;
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console");
    let installed = std::path::Path::new(dir)
        .join("node_modules/oidc-provider")
        .exists();
    if !installed {
        assert!(
            std::env::var("CI").is_err(),
            "oidc-provider is required (tests/run.sh installs it)"
        );
        eprintln!("skipping: run `npm ci` in tests/console");
        return;
    }
    let (idp_port, port) = (common::free_port(), common::free_port());
    let issuer = format!("http://127.0.0.1:{idp_port}");
    let redirect = format!("http://127.0.0.1:{port}/console/oidc/callback");
    let secret = "callvault-console-test-secret-7f3a";
    let _provider = Provider(
        std::process::Command::new("node")
            .arg(format!("{dir}/oidc-provider.mjs"))
            .args([&idp_port.to_string(), &redirect, secret])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("node runs the provider"),
    );
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let jwks = loop {
        if let Ok(r) = http.get(format!("{issuer}/jwks")).send().await
            && r.status().is_success()
        {
            break r.bytes().await.expect("jwks");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deployment = common::Deployment::new(&format!(
        "[auth.oidc]\njwks = \"jwks.json\"\nissuer = \"{issuer}\"\naudience = \"callvault-api\"\nroles_claim = \"groups\"\n\
         [auth.oidc.roles]\ncallvault-supervisors = \"supervisor\"\ncallvault-compliance = \"compliance\"\n\
         [console.oidc]\nclient_id = \"callvault-console\"\nclient_secret = \"console-oidc-secret\"\nredirect_uri = \"{redirect}\"\n\
         scopes = \"openid profile\"\nlabel = \"Sign in with the council account\"\n"
    ));
    std::fs::write(deployment.path("jwks.json"), &jwks).expect("jwks file");
    std::fs::write(deployment.path("console-oidc-secret"), secret).expect("secret");
    common::chmod_600(&deployment.path("console-oidc-secret"));
    let text = std::fs::read_to_string(&deployment.config).expect("config");
    std::fs::write(
        &deployment.config,
        text.replacen("127.0.0.1:0", &format!("127.0.0.1:{port}"), 1),
    )
    .expect("config");
    let live = Live::start_in(deployment).await;
    assert_eq!(live.public.port(), port);
    let base = format!("http://127.0.0.1:{port}");

    // a callback the console did not start is refused
    let mut web = Web::new(&live);
    let r = web.get("/console/oidc/callback?state=forged&code=x").await;
    assert_eq!(r.status, 401);
    assert!(web.cookie("__Host-callvault").is_none());

    let driver = webdriver::Driver::start(&chromedriver).await;
    let downloads = tempfile::tempdir().expect("tempdir");
    // a compliance officer, by the groups claim through [auth.oidc]'s mapping
    let b = driver.session(&chromium, downloads.path()).await;
    b.goto(&format!("{base}/console/sign-in")).await;
    assert_eq!(b.text("a.button").await, "Sign in with the council account");
    axe(&b, "sign-in (with oidc)").await;
    oidc_login(&b, &base, "dpo-sam").await;
    wait_url(&b, "/console/search").await;
    let who = b.text("header .who").await;
    assert!(
        who.contains("oidc:dpo-sam") && who.contains("(compliance)"),
        "{who}"
    );
    assert!(b.exists("a[href='/console/audit']").await);
    b.goto(&format!("{base}/console/audit?action=console.sign_in"))
        .await;
    assert!(b.text("#audit-entries").await.contains("oidc:dpo-sam"));
    // signing out ends it
    b.click("button.link").await;
    wait_url(&b, "/console/sign-in").await;
    b.goto(&format!("{base}/console/holds")).await;
    wait_url(&b, "/console/sign-in").await;
    b.close().await;

    // a supervisor by their group; someone in neither group gets no session
    let b = driver.session(&chromium, downloads.path()).await;
    oidc_login(&b, &base, "sup-alex").await;
    wait_url(&b, "/console/search").await;
    assert!(b.text("header .who").await.contains("(supervisor)"));
    assert!(!b.exists("a[href='/console/audit']").await);
    b.close().await;
    let b = driver.session(&chromium, downloads.path()).await;
    oidc_login(&b, &base, "staff-kim").await;
    assert!(
        b.text(".error-summary").await.contains("no console role"),
        "{}",
        b.text("main").await
    );
    assert!(b.url().await.contains("/console/oidc/callback"));
    b.goto(&format!("{base}/console/search")).await;
    wait_url(&b, "/console/sign-in").await;
    b.close().await;
    drop(driver);
    live.stop().await;
}

/// Signs in through the provider's development login as `who`, consenting the first time.
async fn oidc_login(b: &webdriver::Browser, base: &str, who: &str) {
    b.goto(&format!("{base}/console/search")).await;
    wait_url(b, "/console/sign-in").await;
    b.click("a.button").await;
    wait_url(b, "/interaction/").await;
    b.fill("input[name=login]", who).await;
    b.fill("input[name=password]", "any").await;
    b.click("button[type=submit]").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let u = b.url().await;
        if u.starts_with(base) {
            break;
        }
        if b.exists("input[value=consent]").await {
            b.click("button[type=submit]").await;
        }
        assert!(tokio::time::Instant::now() < deadline, "stuck at {u}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
