//! Connection handling: a dropped connection is replaced; a stalled one times out and is
//! replaced too, in fulfilment and in export.
//!
//! A small TCP relay on loopback sits between the connector and Samba (TLS passes through it
//! untouched; the certificate names 127.0.0.1, so verification still holds) and can cut or
//! stall the connections it relays. A stalled connection stays stalled, as a half-open TCP
//! connection would (a firewall that dropped its state, a frozen peer); connections made later
//! are relayed normally.

use crate::support::*;
use autoprov_ad::AdConnector;
use autoprov_connector::{Connector, ConnectorExt, ErrorKind, ExportRequest};
use autoprov_core::{ChangeType, Changes, Reference, StableId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One relayed connection: its two pumps and its stall switches.
struct Link {
    stalled: Arc<AtomicBool>,
    /// Server-to-client chunks still relayed before the link stalls (`usize::MAX`: no limit).
    answers_left: Arc<AtomicUsize>,
    pumps: [JoinHandle<()>; 2],
}

struct Relay {
    port: u16,
    links: Arc<std::sync::Mutex<Vec<Link>>>,
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

async fn pump(
    mut from: tokio::io::ReadHalf<TcpStream>,
    mut to: tokio::io::WriteHalf<TcpStream>,
    stalled: Arc<AtomicBool>,
    answers_left: Option<Arc<AtomicUsize>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(left) = &answers_left {
            let was = left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n != usize::MAX && n > 0).then(|| n - 1)
                })
                .unwrap_or_else(|n| n);
            if was == 0 {
                stalled.store(true, Ordering::SeqCst);
            }
        }
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Relay {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let links: Arc<std::sync::Mutex<Vec<Link>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (l, a) = (links.clone(), accepted.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let (cr, cw) = tokio::io::split(client);
                let (sr, sw) = tokio::io::split(server);
                let stalled = Arc::new(AtomicBool::new(false));
                let answers_left = Arc::new(AtomicUsize::new(usize::MAX));
                let pumps = [
                    tokio::spawn(pump(cr, sw, stalled.clone(), None)),
                    tokio::spawn(pump(sr, cw, stalled.clone(), Some(answers_left.clone()))),
                ];
                l.lock().unwrap().push(Link {
                    stalled,
                    answers_left,
                    pumps,
                });
            }
        });
        Self {
            port,
            links,
            accepted,
            accept,
        }
    }

    /// Drops every relayed connection (new ones are still accepted).
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            for pump in link.pumps {
                pump.abort();
            }
        }
    }

    /// Stops relaying on every connection open now, for good; later connections are relayed.
    fn stall_open_connections(&self) {
        for link in self.links.lock().unwrap().iter() {
            link.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// Lets every connection open now relay `answers` more chunks from the server, then
    /// stalls it for good.
    fn stall_open_connections_after(&self, answers: usize) {
        for link in self.links.lock().unwrap().iter() {
            link.answers_left.store(answers, Ordering::SeqCst);
        }
    }

    /// How many connections the relay has accepted so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn connector(&self, env: &AdEnv, request_timeout: Duration) -> AdConnector {
        AdConnector::builder()
            .server(format!("ldaps://127.0.0.1:{}", self.port), &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .connections(1)
            .request_timeout(request_timeout)
            .retry_delay(Duration::from_millis(10))
            .build()
            .await
            .expect("through the relay, TLS verified")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

fn upstream(env: &AdEnv) -> String {
    env.url
        .trim_start_matches("ldaps://")
        .trim_end_matches('/')
        .to_owned()
}

async fn create_user(ad: &AdConnector, ou: &str) -> (String, StableId) {
    let mut c = Changes::default();
    c.set("cn", "Rita Relay")
        .set("sAMAccountName", format!("q{}", token()))
        .set("enabled", false)
        .set_reference("parentdn", Reference::dn(ou));
    let created = apply(ad, &order(ChangeType::Added, "user", c, None)).await;
    let stable = created.stable_id.expect("AD gives the objectGUID");
    (created.resource_id.to_string(), stable)
}

fn describe(dn: &str, stable: &StableId, text: &str) -> autoprov_core::ProvisioningOrder {
    let mut c = Changes::default();
    c.set("description", text);
    order(ChangeType::Modified, "user", c, Some((dn, Some(stable))))
}

#[tokio::test]
async fn a_dropped_connection_is_replaced() {
    let Some(env) = ad_env("a_dropped_connection_is_replaced") else {
        return;
    };
    in_ou(&env.clone(), "relay-cut", |admin, ou| async move {
        let relay = Relay::start(upstream(&env)).await;
        let ad = relay.connector(&env, Duration::from_secs(30)).await;
        let (dn, stable) = create_user(&ad, &ou).await;
        assert_eq!(relay.accepted(), 1);

        // The connection drops: the next order reconnects and succeeds.
        relay.cut();
        tokio::time::sleep(Duration::from_millis(100)).await;
        apply(&ad, &describe(&dn, &stable, "after the cut")).await;
        assert_eq!(
            admin.values(&dn, "description").await,
            vec!["after the cut"]
        );
        assert_eq!(
            relay.accepted(),
            2,
            "one new connection replaced the cut one"
        );

        // Cut again, without a pause: the order notices on its first write and retries once on
        // a fresh connection.
        relay.cut();
        apply(&ad, &describe(&dn, &stable, "after the second cut")).await;
        assert_eq!(
            admin.values(&dn, "description").await,
            vec!["after the second cut"]
        );
        ad.check().await.expect("healthy again");
    })
    .await;
}

#[tokio::test]
async fn a_stalled_connection_times_out_and_is_replaced() {
    let Some(env) = ad_env("a_stalled_connection_times_out_and_is_replaced") else {
        return;
    };
    // This test measures deadlines, so it has the server to itself.
    in_ou_alone(&env.clone(), "relay-stall", |admin, ou| async move {
        let relay = Relay::start(upstream(&env)).await;
        let deadline = Duration::from_secs(5);
        let ad = relay.connector(&env, deadline).await;
        let (dn, stable) = create_user(&ad, &ou).await;
        assert_eq!(relay.accepted(), 1);

        // The server stops answering on the open connection: the order fails in time, as a
        // temporary timeout that names the order and the target.
        relay.stall_open_connections();
        let started = Instant::now();
        let stalled = describe(&dn, &stable, "stalled");
        let e = refuse(&ad, &stalled).await;
        let took = started.elapsed();
        assert!(took >= deadline, "gave up before the deadline: {took:?}");
        assert!(took < deadline * 2, "took {took:?}");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_temporary(), "{e}");
        let text = e.to_string();
        assert!(text.contains(stalled.order_id.as_str()), "{text}");
        assert!(text.contains(&dn), "{text}");

        // The stalled connection is still open (and still stalled), but it is not trusted
        // again: the next order runs on a new connection and succeeds.
        let started = Instant::now();
        apply(&ad, &describe(&dn, &stable, "recovered")).await;
        assert!(started.elapsed() < deadline, "took {:?}", started.elapsed());
        assert_eq!(admin.values(&dn, "description").await, vec!["recovered"]);
        assert_eq!(
            relay.accepted(),
            2,
            "one new connection replaced the stalled one"
        );
        ad.check().await.expect("healthy again");

        // The same for an export. The export first reads the server's update sequence number
        // and identity (two answers, relayed); then its paged search stalls and times out,
        // naming the search base; the next export runs on a new connection and sees the
        // account.
        relay.stall_open_connections_after(2);
        let e = ad
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .expect_err("the stalled export times out");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_temporary(), "{e}");
        assert!(
            e.to_string().contains(ou.as_str()),
            "the paged search stalled: {e}"
        );
        let batch = ad
            .export_all(ExportRequest::complete().within(ou.as_str()))
            .await
            .expect("the next export runs on a new connection");
        assert!(
            batch.resources.iter().any(|r| r.id.as_str() == dn),
            "the account is exported: {:?}",
            batch
                .resources
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
        );
        assert_eq!(relay.accepted(), 3);
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_domain_controller_fails_over_to_the_next() {
    let Some(env) = ad_env("an_unreachable_domain_controller_fails_over_to_the_next") else {
        return;
    };
    // Nothing listens on port 1: the first URL is refused from the start.
    let dead = "ldaps://127.0.0.1:1";
    let ad = AdConnector::builder()
        .server(dead, &env.base_dn)
        .fallback(&env.url)
        .bind(&env.bind_dn, env.password.as_str())
        .ca_certificate_file(&env.ca_file)
        .build()
        .await
        .expect("the fallback answers");
    ad.check().await.expect("through the fallback");

    // Every URL refused: the error names each one.
    let e = AdConnector::builder()
        .server(dead, &env.base_dn)
        .fallback("ldaps://127.0.0.1:2")
        .bind(&env.bind_dn, env.password.as_str())
        .ca_certificate_file(&env.ca_file)
        .build()
        .await
        .expect_err("nothing answers");
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:1") && text.contains("127.0.0.1:2"),
        "{text}"
    );
    assert!(e.is_temporary(), "{e}");

    // A domain controller that goes away while in use: the next order fails over.
    in_ou(&env.clone(), "relay-failover", |admin, ou| async move {
        let relay = Relay::start(upstream(&env)).await;
        let ad = AdConnector::builder()
            .server(format!("ldaps://127.0.0.1:{}", relay.port), &env.base_dn)
            .fallback(&env.url)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .connections(1)
            .retry_delay(Duration::from_millis(10))
            .build()
            .await
            .expect("through the relay");
        let (dn, stable) = create_user(&ad, &ou).await;
        assert_eq!(
            relay.accepted(),
            1,
            "the first URL is used while it answers"
        );
        drop(relay); // stops listening and drops its connections
        tokio::time::sleep(Duration::from_millis(100)).await;
        apply(&ad, &describe(&dn, &stable, "after the failover")).await;
        assert_eq!(
            admin.values(&dn, "description").await,
            vec!["after the failover"]
        );
    })
    .await;
}
