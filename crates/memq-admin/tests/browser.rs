//! The admin page in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`) against the page
//! served on 127.0.0.1. It sees a topic appear after it is created, its
//! depth change after publishes, a group's lag fall as it consumes, and a
//! topic named like markup shown as text, with nothing executed.
//!
//! Without `chromedriver` the test says it skipped; with `CI` set, a
//! missing browser fails it. `MEMQ_ADMIN_SCREENSHOT=path` saves a
//! screenshot of the page there (the README's).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::request;
use serde_json::{json, Value};
use tokio_memq::{ConsumptionMode, MessageQueue};

/// A WebDriver session on a chromedriver this test started.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start(driver: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut browser = Browser {
            driver: child,
            addr,
            session: String::new(),
        };
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("memq-admin-chromium-{port}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium().unwrap_or_else(|| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,760",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let session = browser.call("POST", "/session", Some(caps)).await;
        browser.session = session["sessionId"].as_str().expect("a session").to_string();
        browser
    }

    /// One WebDriver command; returns its `value`.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("content-type", "application/json")];
        let r = request(self.addr, method, path, &headers, &body).await;
        let v = r.json();
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    async fn go(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({ "url": url })))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Runs `script` until `done` says yes (the page refreshes every second).
    async fn until(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.script(script).await;
            if done(&v) {
                return v;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: last saw {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// True when an alert is open (a script ran `alert`).
    async fn alert_open(&self) -> bool {
        let r = request(self.addr, "GET", &self.at("/alert/text"), &[], "").await;
        r.status == 200
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn chromium() -> Option<String> {
    which("chromium").or_else(|| which("chromium-browser"))
}

const TOPIC_ROWS: &str = "return Array.from(document.querySelectorAll('tr.topic')).map(r => [r.dataset.topic, r.querySelector('.name').textContent, r.querySelector('.depth').textContent]);";

fn depth_of(rows: &Value, topic: &str) -> Option<String> {
    rows.as_array()?
        .iter()
        .find(|r| r[0] == topic)
        .and_then(|r| r[2].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_the_queue_in_a_real_browser() {
    let Some(driver) = which("chromedriver").filter(|_| chromium().is_some()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but chromium / chromedriver are missing: .ci/run installs them"
        );
        eprintln!(
            "skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let mq = MessageQueue::new();
    let app = axum::Router::new().nest("/admin", memq_admin::router(mq.clone()));
    let server = common::serve(app).await;
    let browser = Browser::start(&driver).await;
    browser.go(&format!("http://{server}/admin")).await;
    browser
        .until(
            "the page polls",
            "return document.getElementById('status').textContent;",
            |v| v.as_str().is_some_and(|s| s.contains("topics · updated")),
        )
        .await;

    // A topic appears after it is created.
    mq.create_topic("orders", Default::default()).await.unwrap();
    let _reader = mq.subscriber("orders").await.unwrap();
    browser
        .until("orders appears", TOPIC_ROWS, |rows| {
            depth_of(rows, "orders").as_deref() == Some("0")
        })
        .await;
    // Its depth changes after publishes.
    mq.publisher("orders")
        .publish_batch(vec![1u32, 2, 3, 4, 5])
        .await
        .unwrap();
    browser
        .until("orders depth 5", TOPIC_ROWS, |rows| {
            depth_of(rows, "orders").as_deref() == Some("5")
        })
        .await;

    // A group's lag falls as it consumes.
    let worker = mq
        .group("jobs", "billing")
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("jobs")
        .publish_batch((0..6u32).collect())
        .await
        .unwrap();
    let lag = "return Array.from(document.querySelectorAll('tr.group')).filter(r => r.dataset.group === 'billing').map(r => r.querySelector('.lag').textContent);";
    browser.until("lag 6", lag, |v| v == &json!(["6"])).await;
    worker.recv_batch(4).await.unwrap();
    browser.until("lag 2", lag, |v| v == &json!(["2"])).await;
    worker.recv_batch(2).await.unwrap();
    browser.until("lag 0", lag, |v| v == &json!(["0"])).await;

    // Names that look like markup are shown as text; nothing runs.
    let hostile = [
        "<script>alert(1)</script>",
        "<img src=x onerror=\"window.__pwned=1;alert(2)\">",
    ];
    for name in hostile {
        mq.publisher(name).publish(1u8).await.unwrap();
    }
    let rows = browser
        .until("the hostile names appear", TOPIC_ROWS, |rows| {
            hostile.iter().all(|n| depth_of(rows, n).is_some())
        })
        .await;
    for name in hostile {
        let row = rows.as_array().unwrap().iter().find(|r| r[0] == name).unwrap();
        assert_eq!(row[1], name, "shown as the text it is");
    }
    assert!(!browser.alert_open().await, "no alert ran");
    assert_eq!(browser.script("return window.__pwned === undefined;").await, true);
    let markup = browser
        .script("return document.querySelector('#topics tbody').innerHTML;")
        .await;
    let markup = markup.as_str().unwrap();
    assert!(
        markup.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{markup}"
    );
    assert!(!markup.contains("<img"), "{markup}");
    assert_eq!(
        browser
            .script("return document.querySelectorAll('#topics script, #topics img').length;")
            .await,
        0
    );

    if let Some(path) = std::env::var_os("MEMQ_ADMIN_SCREENSHOT") {
        mq.delete_topic("<script>alert(1)</script>").await;
        mq.delete_topic("<img src=x onerror=\"window.__pwned=1;alert(2)\">")
            .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let png = browser.call("GET", &browser.at("/screenshot"), None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(&path, png).unwrap();
    }
    browser.call("DELETE", &browser.at(""), None).await;
}
