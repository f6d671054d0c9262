//! The admin router over HTTP: the page (self-contained, with a strict
//! content security policy), the JSON snapshot, and the route that deletes
//! a topic, which exists only with a token and checks it.

mod common;

use common::{request, serve};
use tokio_memq::{ConsumptionMode, MessageQueue, TopicOptions};

#[tokio::test]
async fn the_page_is_self_contained() {
    let addr = serve(axum::Router::new().nest("/admin", memq_admin::router(MessageQueue::new()))).await;
    let page = request(addr, "GET", "/admin", &[], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text();
    assert!(html.contains("<title>tokio-memq admin</title>"));
    for external in ["<script src", "<link", "src=\"http", "href=\"http", "@import"] {
        assert!(
            !html.contains(external),
            "the page loads nothing from elsewhere ({external})"
        );
    }
    assert!(!html.contains("innerHTML"), "names are never parsed as markup");
}

#[tokio::test]
async fn the_snapshot_has_topics_partitions_and_groups() {
    let mq = MessageQueue::new();
    let addr = serve(memq_admin::router(mq.clone())).await;
    assert_eq!(
        request(addr, "GET", "/api/snapshot", &[], "").await.json()["topics"],
        serde_json::json!([])
    );

    let _sub = mq.subscriber("orders").await.unwrap();
    mq.publisher("orders")
        .publish_batch(vec![1u8, 2, 3])
        .await
        .unwrap();
    mq.create_partitioned_topic("clicks", TopicOptions::default(), 2)
        .await
        .unwrap();
    let worker = mq
        .group("jobs", "billing")
        .manual_ack()
        .mode(ConsumptionMode::Earliest)
        .join()
        .await
        .unwrap();
    mq.publisher("jobs").publish_batch(vec![1u8, 2]).await.unwrap();
    let _job = worker.recv().await.unwrap();

    let snap = request(addr, "GET", "/api/snapshot", &[], "").await.json();
    assert_eq!(snap["changes"], false);
    let topics = snap["topics"].as_array().unwrap();
    let names: Vec<&str> = topics.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clicks", "jobs", "orders"]);
    let orders = &topics[2];
    assert_eq!(
        (
            orders["depth"].as_u64(),
            orders["published"].as_u64(),
            orders["subscribers"].as_u64()
        ),
        (Some(3), Some(3), Some(1))
    );
    assert_eq!(topics[0]["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(topics[0]["partitioned"], true);
    let group = &topics[1]["groups"][0];
    assert_eq!(group["name"], "billing");
    assert_eq!(
        (
            group["members"].as_u64(),
            group["pending"].as_u64(),
            group["lag"].as_u64()
        ),
        (Some(1), Some(1), Some(2))
    );
}

#[tokio::test]
async fn changes_need_a_token() {
    let mq = MessageQueue::new();
    mq.create_topic("doomed", TopicOptions::default()).await.unwrap();
    // Read-only: the route does not exist.
    let read_only = serve(memq_admin::router(mq.clone())).await;
    let r = request(
        read_only,
        "POST",
        "/api/topics/doomed/delete",
        &[("authorization", "Bearer anything")],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    // An empty token enables nothing either.
    let empty = serve(memq_admin::Admin::new(mq.clone()).with_token("").router()).await;
    assert_eq!(
        request(empty, "POST", "/api/topics/doomed/delete", &[], "")
            .await
            .status,
        404
    );

    let admin = serve(memq_admin::Admin::new(mq.clone()).with_token("s3cret").router()).await;
    assert_eq!(
        request(admin, "GET", "/api/snapshot", &[], "").await.json()["changes"],
        true
    );
    for bad in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let headers: Vec<(&str, &str)> = bad.map(|b| ("authorization", b)).into_iter().collect();
        let r = request(admin, "POST", "/api/topics/doomed/delete", &headers, "").await;
        assert_eq!(r.status, 401, "{bad:?}");
    }
    assert!(
        mq.list_topics().await.contains(&"doomed".to_string()),
        "still there"
    );
    // A GET never deletes.
    assert_eq!(
        request(
            admin,
            "GET",
            "/api/topics/doomed/delete",
            &[("authorization", "Bearer s3cret")],
            ""
        )
        .await
        .status,
        405
    );
    let r = request(
        admin,
        "POST",
        "/api/topics/doomed/delete",
        // The scheme in any case (RFC 7235).
        &[("authorization", "bearer s3cret")],
        "",
    )
    .await;
    assert_eq!((r.status, r.json()["deleted"].as_bool()), (200, Some(true)));
    assert!(!mq.list_topics().await.contains(&"doomed".to_string()));
    let again = request(
        admin,
        "POST",
        "/api/topics/doomed/delete",
        &[("authorization", "Bearer s3cret")],
        "",
    )
    .await;
    assert_eq!(again.json()["deleted"], false);
}

/// A token that is not ASCII (`with_token` takes any text) works: the
/// header is read as bytes, where it was read as text and refused, which
/// locked the operator out.
#[tokio::test]
async fn a_token_that_is_not_ascii_works() {
    let mq = MessageQueue::new();
    mq.create_topic("doomed", TopicOptions::default()).await.unwrap();
    let admin = serve(memq_admin::Admin::new(mq.clone()).with_token("tökén-ß").router()).await;
    let wrong = request(
        admin,
        "POST",
        "/api/topics/doomed/delete",
        &[("authorization", "Bearer tökén-s")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let r = request(
        admin,
        "POST",
        "/api/topics/doomed/delete",
        &[("authorization", "Bearer tökén-ß")],
        "",
    )
    .await;
    assert_eq!((r.status, r.json()["deleted"].as_bool()), (200, Some(true)));
}

/// Whitespace around a configured token is not part of it (HTTP drops it
/// from header values: "s3cret " could never arrive, and locked the
/// operator out), a token no header can carry enables nothing, one or
/// more spaces may follow the scheme, and a refusal says how to
/// authenticate (`WWW-Authenticate`, RFC 7235).
#[tokio::test]
async fn tokens_are_taken_as_a_header_can_carry_them() {
    let delete = |admin, auth: &'static str| async move {
        request(
            admin,
            "POST",
            "/api/topics/doomed/delete",
            &[("authorization", auth)],
            "",
        )
        .await
    };
    for (configured, sent) in [
        ("s3cret ", "Bearer s3cret"),
        ("\ts3cret\t", "Bearer s3cret"),
        ("s3cret", "Bearer  s3cret"),
        ("s3cret", "Bearer \t s3cret"),
    ] {
        let mq = MessageQueue::new();
        mq.create_topic("doomed", TopicOptions::default()).await.unwrap();
        let admin = serve(memq_admin::Admin::new(mq.clone()).with_token(configured).router()).await;
        let r = delete(admin, sent).await;
        assert_eq!(
            (r.status, r.json()["deleted"].as_bool()),
            (200, Some(true)),
            "{configured:?} / {sent:?}"
        );
    }
    for unusable in [" ", "\t\t", "new\nline", "del\u{7f}"] {
        let mq = MessageQueue::new();
        let admin = memq_admin::Admin::new(mq.clone()).with_token(unusable);
        assert!(!admin.changes_enabled(), "{unusable:?}");
        let addr = serve(admin.router()).await;
        assert_eq!(
            request(addr, "GET", "/api/snapshot", &[], "").await.json()["changes"],
            false
        );
        assert_eq!(
            delete(addr, "Bearer x").await.status,
            404,
            "{unusable:?}: no such route"
        );
    }
    let mq = MessageQueue::new();
    let admin = serve(memq_admin::Admin::new(mq).with_token("s3cret").router()).await;
    let refused = delete(admin, "Bearer wrong").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
}
