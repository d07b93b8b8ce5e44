//! A small WebDriver (W3C) client over reqwest, driving Debian's chromium through chromedriver:
//! only the commands the console's browser tests use.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed on drop.
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The chromium and chromedriver binaries; panics (the test fails) when missing under CI, as
/// tests/run.sh installs them.
pub fn binaries() -> Option<(String, String)> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
    };
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let driver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "chromium and chromium-driver are required (tests/run.sh installs them)"
            );
            eprintln!(
                "skipping: chromium or chromedriver not installed (apt-get install chromium chromium-driver)"
            );
            None
        }
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready.
    pub async fn start(driver: &str) -> Driver {
        let port = super::common::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = d.http.get(format!("{}/status", d.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    /// A new headless browser session.
    pub async fn session(&self, chromium: &str, download_dir: &std::path::Path) -> Browser {
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required",
                         "--mute-audio", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-default-apps"],
                "prefs": { "download.default_directory": download_dir.display().to_string(),
                           "download.prompt_for_download": false },
            },
        } } });
        let v = post(&self.http, &format!("{}/session", self.url), &caps).await;
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        Browser {
            base: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let r = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("webdriver answers");
    let status = r.status();
    let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
    assert!(status.is_success(), "webdriver {url}: {status} {v}");
    v["value"].clone()
}

/// One browser window.
pub struct Browser {
    base: String,
    http: reqwest::Client,
}

impl Browser {
    async fn cmd(&self, path: &str, body: Value) -> Value {
        post(&self.http, &format!("{}{path}", self.base), &body).await
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("webdriver answers");
        let v: Value = serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("/url", json!({ "url": url })).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_owned()
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .http
                .post(format!("{}/element", self.base))
                .header("content-type", "application/json")
                .body(json!({ "using": "css selector", "value": css }).to_string())
                .send()
                .await
                .expect("webdriver answers");
            if r.status().is_success() {
                let v: Value =
                    serde_json::from_slice(&r.bytes().await.expect("body")).expect("json");
                return v["value"][ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("element id in {v}"))
                    .to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.js(
            &format!("return document.querySelector({}) !== null", json!(css)),
            json!([]),
        )
        .await
        .as_bool()
        .unwrap_or(false)
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Clears the field `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(&format!("/element/{e}/clear"), json!({})).await;
        self.cmd(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.get(&format!("/element/{e}/text"))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Runs `script` (a function body) with `args`; its return value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Runs `script` whose last argument is the callback to call with the result.
    pub async fn js_async(&self, script: &str, args: Value) -> Value {
        self.cmd("/execute/async", json!({ "script": script, "args": args }))
            .await
    }

    /// Polls `script` until it returns a truthy value, or panics with `what` after `within`.
    pub async fn wait_for(&self, script: &str, what: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self.js(script, json!([])).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let b64 = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().expect("base64"))
            .expect("png")
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.cmd("/window/rect", json!({ "width": width, "height": height }))
            .await;
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
