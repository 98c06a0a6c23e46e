//! Paged export: turns a page-fetch closure into an [`ExportStream`].
//!
//! Most managed systems hand out their objects a page at a time (an LDAP paged search, a SCIM
//! `startIndex`/`count` list, a database cursor). A package describes how to fetch one page
//! from a token (an offset, a continuation token, the last key read) and [`paged_export`]
//! does the rest: it fetches the next page only when the consumer has read the previous
//! one (the export is never buffered whole), yields each page's items in order, stops at the
//! first error (yielding it), and ends with [`ExportItem::Complete`] carrying the cookie of
//! the last page.
//!
//! ```
//! use autoprov_connector::paging::{Page, paged_export};
//! use autoprov_connector::{ConnectorExt as _, ExportCookie};
//! use autoprov_core::Resource;
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let names = ["ann", "bob", "cy"];
//! // Two names a page; the token is the offset of the page.
//! let stream = paged_export(0usize, move |offset| async move {
//!     let items = names.iter().skip(offset).take(2).map(|n| Resource::new(*n));
//!     Ok(if offset + 2 < names.len() {
//!         Page::more(items, offset + 2)
//!     } else {
//!         Page::last(items, ExportCookie("v1".into()))
//!     })
//! });
//! # use futures::StreamExt as _;
//! let items: Vec<_> = stream.collect().await;
//! assert_eq!(items.len(), 4); // three resources, then the cookie
//! # });
//! ```

use crate::connector::{ExportCookie, ExportItem, ExportMode, ExportStream};
use crate::error::{ConnectorError, ErrorKind, Operation};
use futures::StreamExt as _;
use std::future::Future;

/// One page of an export: its items, and either the token of the next page or, on the last
/// page, the cookie the export ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The page's items, in order (resources, and deletions for an incremental export).
    pub items: Vec<ExportItem>,
    /// What follows the page.
    pub next: Next<T>,
}

/// What follows a [`Page`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Another page, fetched with this token.
    Page(T),
    /// Nothing: the export ends with this cookie.
    Done(ExportCookie),
}

impl<T> Page<T> {
    /// A page followed by the page of `token`.
    pub fn more(items: impl IntoIterator<Item = impl Into<ExportItem>>, token: T) -> Self {
        Self {
            items: items.into_iter().map(Into::into).collect(),
            next: Next::Page(token),
        }
    }

    /// The last page: the export ends with `cookie` after its items.
    pub fn last(
        items: impl IntoIterator<Item = impl Into<ExportItem>>,
        cookie: ExportCookie,
    ) -> Self {
        Self {
            items: items.into_iter().map(Into::into).collect(),
            next: Next::Done(cookie),
        }
    }

    /// A page of `items` followed by the page of `token`, or the last page (ending with
    /// `cookie()`) when `token` is `None`.
    pub fn new(
        items: impl IntoIterator<Item = impl Into<ExportItem>>,
        token: Option<T>,
        cookie: impl FnOnce() -> ExportCookie,
    ) -> Self {
        match token {
            Some(token) => Self::more(items, token),
            None => Self::last(items, cookie()),
        }
    }
}

/// An export stream that fetches its pages with `fetch`, starting from the token `first`.
///
/// `fetch` is called once per page, lazily: the page after one is fetched only when the
/// consumer has read that page's items, and dropping the stream drops the fetch in flight
/// (no page is fetched after the drop). An empty page is allowed anywhere (its next token
/// is followed). The stream yields each page's items, then [`ExportItem::Complete`] with the
/// last page's cookie; a fetch error is yielded and ends the stream (no `Complete`).
pub fn paged_export<T, F, Fut>(first: T, fetch: F) -> ExportStream
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Page<T>, ConnectorError>> + Send + 'static,
{
    let pages = futures::stream::unfold(Some((first, fetch)), |state| async move {
        let (token, mut fetch) = state?;
        let (items, state) = match fetch(token).await {
            Ok(Page { items, next }) => {
                let mut items: Vec<_> = items.into_iter().map(Ok).collect();
                let state = match next {
                    Next::Page(token) => Some((token, fetch)),
                    Next::Done(cookie) => {
                        items.push(Ok(ExportItem::Complete { cookie }));
                        None
                    }
                };
                (items, state)
            }
            Err(e) => (vec![Err(e)], None),
        };
        Some((futures::stream::iter(items), state))
    });
    Box::pin(pages.flatten())
}

/// The export cookie of a system that numbers its changes: `<prefix>@<change number>`, where
/// the prefix names the system (a connection id, a site), so that another system's cookie is
/// recognised. Read it back with [`counter_since`].
pub fn counter_cookie(prefix: &str, change: u64) -> ExportCookie {
    ExportCookie(format!("{prefix}@{change}"))
}

/// Where an export in `mode` starts, for a system that numbers its changes and whose latest
/// change number is `latest`: `None` for a complete export; for an incremental export, the
/// change number of its [`counter_cookie`]. A cookie that is not `<prefix>@<n>` with `n` at
/// most `latest` (another system's, or one ahead of this system, as after a restore) is a
/// `Conflict` error (the caller runs a complete export).
pub fn counter_since(
    mode: &ExportMode,
    prefix: &str,
    latest: u64,
) -> Result<Option<u64>, ConnectorError> {
    // A new mode is a compile error here: this crate defines `ExportMode`.
    let cookie = match mode {
        ExportMode::Complete => return Ok(None),
        ExportMode::Incremental(cookie) => cookie,
    };
    let change = cookie.0.rsplit_once('@').and_then(|(p, n)| {
        let n: u64 = n.parse().ok()?;
        (p == prefix).then_some(n)
    });
    match change {
        Some(n) if n <= latest => Ok(Some(n)),
        Some(n) => Err(ConnectorError::new(
            ErrorKind::Conflict,
            Operation::Export,
            format!(
                "{cookie:?} is ahead of {prefix} (change {n} > {latest}); run a complete export"
            ),
        )),
        None => Err(ConnectorError::new(
            ErrorKind::Conflict,
            Operation::Export,
            format!("{cookie:?} is not a cookie of {prefix}; run a complete export"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, Operation};
    use autoprov_core::Resource;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake system of `n` resources served `size` a page, counting its fetches, failing on
    /// the page that starts at `fail_at`.
    fn system(n: usize, size: usize, fail_at: Option<usize>) -> (ExportStream, Arc<AtomicUsize>) {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let stream = paged_export(0usize, move |from| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if fail_at == Some(from) {
                    return Err(ConnectorError::new(
                        ErrorKind::Unavailable,
                        Operation::Export,
                        format!("page at {from}"),
                    ));
                }
                let to = (from + size).min(n);
                let items = (from..to).map(|i| Resource::new(format!("r{i}")));
                Ok(Page::new(items, (to < n).then_some(to), || {
                    ExportCookie(format!("c{n}"))
                }))
            }
        });
        (stream, fetches)
    }

    fn ids(items: &[Result<ExportItem, ConnectorError>]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Ok(ExportItem::Resource(r)) => r.id.to_string(),
                Ok(ExportItem::Complete { cookie }) => format!("complete {}", cookie.0),
                Ok(other) => format!("{other:?}"),
                Err(e) => format!("error {}", e.message()),
            })
            .collect()
    }

    #[test]
    fn counter_cookies_round_trip_and_others_conflict() {
        let mode = |c: &str| ExportMode::Incremental(ExportCookie(c.into()));
        let cookie = counter_cookie("HQ@site", 7);
        assert_eq!(cookie.0, "HQ@site@7");
        assert_eq!(
            counter_since(&ExportMode::Complete, "HQ@site", 9).unwrap(),
            None
        );
        let since = counter_since(&ExportMode::Incremental(cookie), "HQ@site", 9);
        assert_eq!(since.unwrap(), Some(7));
        assert_eq!(
            counter_since(&mode("HQ@site@9"), "HQ@site", 9).unwrap(),
            Some(9)
        );
        for (cookie, why) in [
            ("HQ@site@10", "ahead"),
            ("other@7", "not a cookie of HQ@site"),
            ("HQ@site@x", "not a cookie"),
            ("7", "not a cookie"),
        ] {
            let e = counter_since(&mode(cookie), "HQ@site", 9).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Conflict, "{cookie}");
            assert!(e.to_string().contains(why), "{cookie}: {e}");
        }
    }

    #[tokio::test]
    async fn pages_in_order_then_the_cookie() {
        for size in [1, 2, 3, 10] {
            let (stream, fetches) = system(3, size, None);
            let items: Vec<_> = stream.collect().await;
            assert_eq!(
                ids(&items),
                ["r0", "r1", "r2", "complete c3"],
                "size {size}"
            );
            assert_eq!(fetches.load(Ordering::SeqCst), 3usize.div_ceil(size));
        }
    }

    #[tokio::test]
    async fn an_empty_export_is_its_cookie() {
        let (stream, fetches) = system(0, 5, None);
        let items: Vec<_> = stream.collect().await;
        assert_eq!(ids(&items), ["complete c0"]);
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn empty_pages_are_followed() {
        let stream = paged_export(0u8, |page| async move {
            Ok(match page {
                0 => Page::more(Vec::<ExportItem>::new(), 1),
                1 => Page::more([Resource::new("a")], 2),
                2 => Page::more(Vec::<ExportItem>::new(), 3),
                _ => Page::last(Vec::<ExportItem>::new(), ExportCookie("end".into())),
            })
        });
        let items: Vec<_> = stream.collect().await;
        assert_eq!(ids(&items), ["a", "complete end"]);
    }

    #[tokio::test]
    async fn an_error_mid_way_is_yielded_and_ends_the_stream() {
        let (stream, fetches) = system(5, 2, Some(2));
        let items: Vec<_> = stream.collect().await;
        assert_eq!(ids(&items), ["r0", "r1", "error page at 2"]);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "no fetch after the error"
        );
    }

    #[tokio::test]
    async fn pages_are_fetched_only_when_read_and_never_after_a_drop() {
        let (mut stream, fetches) = system(10, 2, None);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            0,
            "nothing fetched before reading"
        );
        stream.next().await.unwrap().unwrap();
        stream.next().await.unwrap().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "one page for two items");
        stream.next().await.unwrap().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        drop(stream);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn dropping_the_stream_cancels_the_fetch_in_flight() {
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let mut stream = paged_export((), move |()| {
            let done = done.clone();
            async move {
                futures::future::pending::<()>().await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(Page::last(
                    [Resource::new("never")],
                    ExportCookie("x".into()),
                ))
            }
        });
        let pending = futures::poll!(stream.next());
        assert!(pending.is_pending());
        drop(stream);
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }
}
