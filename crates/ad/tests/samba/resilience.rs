//! Connection handling: a dropped connection is replaced, a stalled one times out.
//!
//! A small TCP relay on loopback sits between the connector and Samba (TLS passes through it
//! untouched; the certificate names 127.0.0.1, so verification still holds) and can cut or
//! stall every relayed connection.

use crate::support::*;
use autoprov_ad::AdConnector;
use autoprov_connector::{Connector, ErrorKind};
use autoprov_core::{ChangeType, Changes, Reference};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Relay {
    port: u16,
    stalled: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

async fn pump(
    mut from: tokio::io::ReadHalf<TcpStream>,
    mut to: tokio::io::WriteHalf<TcpStream>,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
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
        let stalled = Arc::new(AtomicBool::new(false));
        let links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, l) = (stalled.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = tokio::io::split(client);
                let (sr, sw) = tokio::io::split(server);
                let mut links = l.lock().unwrap();
                links.push(tokio::spawn(pump(cr, sw, s.clone())));
                links.push(tokio::spawn(pump(sr, cw, s.clone())));
            }
        });
        Self {
            port,
            stalled,
            links,
            accept,
        }
    }

    /// Drops every relayed connection (new ones are still accepted).
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
#[ignore = "fails in clean CI runs: after a stall then a cut, the recovery write times out (pool reuses a dead connection?); issue 4 stays open for it"]
async fn a_dropped_connection_is_replaced_and_a_stalled_one_times_out() {
    let Some(env) = ad_env("a_dropped_connection_is_replaced_and_a_stalled_one_times_out") else {
        return;
    };
    in_ou(&env.clone(), "relay", |admin, ou| async move {
        let upstream = env
            .url
            .trim_start_matches("ldaps://")
            .trim_end_matches('/')
            .to_owned();
        let relay = Relay::start(upstream).await;
        let ad = AdConnector::builder()
            .server(format!("ldaps://127.0.0.1:{}", relay.port), &env.base_dn)
            .bind(&env.bind_dn, env.password.as_str())
            .ca_certificate_file(&env.ca_file)
            .connections(1)
            .request_timeout(Duration::from_secs(10))
            .retry_delay(Duration::from_millis(10))
            .build()
            .await
            .expect("through the relay, TLS verified");
        let mut c = Changes::default();
        c.set("cn", "Rita Relay")
            .set("sAMAccountName", format!("q{}", token()))
            .set("enabled", false)
            .set_reference("parentdn", Reference::dn(ou.as_str()));
        let created = apply(&ad, &order(ChangeType::Added, "user", c, None)).await;
        let dn = created.resource_id.to_string();

        // The connection drops: the next order reconnects and succeeds.
        relay.cut();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = Changes::default();
        c.set("description", "after the cut");
        apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, created.stable_id.as_ref())),
            ),
        )
        .await;
        assert_eq!(
            admin.values(&dn, "description").await,
            vec!["after the cut"]
        );

        // The server stops answering: the order fails in time, temporarily.
        relay.stall(true);
        let mut c = Changes::default();
        c.set("description", "stalled");
        let started = std::time::Instant::now();
        let e = refuse(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, created.stable_id.as_ref())),
            ),
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_temporary());
        relay.stall(false);
        relay.cut();
        tokio::time::sleep(Duration::from_millis(100)).await;
        ad.check()
            .await
            .expect("recovers once the server answers again");
        let mut c = Changes::default();
        c.set("description", "recovered");
        apply(
            &ad,
            &order(
                ChangeType::Modified,
                "user",
                c,
                Some((&dn, created.stable_id.as_ref())),
            ),
        )
        .await;
        assert_eq!(admin.values(&dn, "description").await, vec!["recovered"]);
    })
    .await;
}
