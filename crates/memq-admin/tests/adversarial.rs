//! Adversarial checks of the admin router (a review of 2026-12-02; all
//! held): tokens with trailing whitespace, names that need escaping in
//! URLs and JSON, deletes that wake waiting members, group lag. Later: a
//! token framed by non-ASCII whitespace (it was trimmed; fixed).

mod common;

use common::{request, serve};
use std::time::Duration;
use tokio::time::timeout;
use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};

const T: Duration = Duration::from_secs(20);

fn enc(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn trailing_whitespace_in_header_is_dropped() {
    timeout(T, async {
        let mq = MessageQueue::new();
        mq.create_topic("doomed", TopicOptions::default()).await.unwrap();
        let admin = serve(memq_admin::Admin::new(mq.clone()).with_token("s3cret").router()).await;
        let r = request(
            admin,
            "POST",
            "/api/topics/doomed/delete",
            &[("authorization", "Bearer s3cret \t ")],
            "",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    })
    .await
    .unwrap();
}

/// `with_token` trimmed Unicode whitespace: a token framed by no-break
/// spaces was stored without them, so the token its owner sends was
/// refused and a shorter one accepted. Only ASCII whitespace is trimmed.
#[tokio::test]
async fn a_token_keeps_whitespace_that_is_not_ascii() {
    timeout(T, async {
        let mq = MessageQueue::new();
        mq.create_topic("doomed", TopicOptions::default()).await.unwrap();
        let admin = serve(
            memq_admin::Admin::new(mq.clone())
                .with_token("\u{a0}s3cret\u{3000}\n")
                .router(),
        )
        .await;
        let path = "/api/topics/doomed/delete";
        let r = request(admin, "POST", path, &[("authorization", "Bearer s3cret")], "").await;
        assert_eq!(r.status, 401, "the shorter token: {}", r.text());
        let given = "Bearer \u{a0}s3cret\u{3000}";
        let r = request(admin, "POST", path, &[("authorization", given)], "").await;
        assert_eq!(r.status, 200, "the token as given: {}", r.text());
        assert_eq!(r.json()["deleted"], true);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn odd_names_roundtrip_through_json_and_delete() {
    timeout(T, async {
        let names = [
            "",
            "a/b",
            "a%2Fb",
            "100%",
            "sp ace",
            "q?x=1#frag",
            "\"quoted'\\",
            "</script><script>alert(1)</script>",
            "ünï©ødé-🦀",
            "\u{2028}\u{2029}",
            "..",
            ".",
            "tab\there",
        ];
        let mq = MessageQueue::new();
        for n in names {
            if mq.create_topic(n, TopicOptions::default()).await.is_err() {
                continue;
            }
            mq.publisher(n).publish(1u8).await.unwrap();
        }
        let created = mq.list_topics().await;
        let admin = serve(memq_admin::Admin::new(mq.clone()).with_token("s3cret").router()).await;
        let snap = request(admin, "GET", "/api/snapshot", &[], "").await.json();
        let got: Vec<String> = snap["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, created);
        for n in &created {
            let r = request(
                admin,
                "POST",
                &format!("/api/topics/{}/delete", enc(n)),
                &[("authorization", "Bearer s3cret")],
                "",
            )
            .await;
            assert_eq!(
                (r.status, r.json()["deleted"].as_bool()),
                (200, Some(true)),
                "{n:?}"
            );
        }
        assert!(mq.list_topics().await.is_empty(), "{:?}", mq.list_topics().await);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_wakes_waiting_group_members_and_subscribers() {
    timeout(T, async {
        let mq = MessageQueue::new();
        mq.create_partitioned_topic("parts", TopicOptions::default(), 3)
            .await
            .unwrap();
        let g1 = mq
            .group("parts", "g")
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        let g2 = mq.group("parts", "g").exclusive().join().await;
        let manual = mq
            .group("jobs", "m")
            .manual_ack()
            .max_deliveries(2)
            .mode(ConsumptionMode::Earliest)
            .join()
            .await
            .unwrap();
        mq.publisher("jobs").publish(1u8).await.unwrap();
        let held = manual.recv().await.unwrap();
        let sub = mq.subscriber("parts").await.unwrap();
        let admin = serve(memq_admin::Admin::new(mq.clone()).with_token("s3cret").router()).await;
        let w1 = tokio::spawn(async move { g1.recv().await.map(|_| ()) });
        let w3 = tokio::spawn(async move { sub.recv().await.map(|_| ()) });
        let mq2 = mq.clone();
        let w2 = tokio::spawn(async move {
            let r = manual.recv().await.map(|_| ());
            let _ = manual.ack(&held);
            drop(mq2);
            r
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        for name in ["parts", "jobs", "jobs.dead-letters"] {
            let r = request(
                admin,
                "POST",
                &format!("/api/topics/{name}/delete"),
                &[("authorization", "Bearer s3cret")],
                "",
            )
            .await;
            assert_eq!(r.status, 200, "{name}");
        }
        assert!(w1.await.unwrap().is_err());
        assert!(w2.await.unwrap().is_err());
        assert!(w3.await.unwrap().is_err());
        drop(g2);
        let snap = request(admin, "GET", "/api/snapshot", &[], "").await.json();
        assert_eq!(snap["topics"], serde_json::json!([]));
    })
    .await
    .unwrap();
}

/// A group that joined at `Latest` after messages were published has
/// nothing to catch up on.
#[tokio::test]
async fn lag_of_a_group_joined_at_latest() {
    timeout(T, async {
        let mq = MessageQueue::new();
        mq.publisher("t")
            .publish_batch((0..5u32).collect())
            .await
            .unwrap();
        let _m = mq
            .group("t", "late")
            .mode(ConsumptionMode::Latest)
            .join()
            .await
            .unwrap();
        let _mm = mq
            .group("t", "late-manual")
            .manual_ack()
            .mode(ConsumptionMode::Latest)
            .join()
            .await
            .unwrap();
        let snap = request(
            serve(memq_admin::router(mq.clone())).await,
            "GET",
            "/api/snapshot",
            &[],
            "",
        )
        .await
        .json();
        for g in snap["topics"][0]["groups"].as_array().unwrap() {
            assert_eq!(g["lag"], 0, "{g}");
        }
    })
    .await
    .unwrap();
}
