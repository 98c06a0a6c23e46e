//! Streams over the paged reads of a [`Store`]: one page in memory at a time, however large
//! the store.

use crate::{JobRun, OrderRecord, Store, StoreError};
use autoprov_core::{ConnectionId, OrderId, ProvisioningResult, Resource, ResourceId};
use futures::stream::{self, BoxStream, StreamExt as _};

/// The page size the streams use unless told otherwise.
pub const DEFAULT_PAGE: usize = 1000;

/// Streams over [`Store`]'s paged reads, for every store.
pub trait StoreExt: Store {
    /// Every order record, by order id, `page` at a time.
    fn orders_stream(&self, page: usize) -> BoxStream<'_, Result<OrderRecord, StoreError>> {
        paged(page, move |after: Option<OrderId>, n| async move {
            let rows = self.orders_page(after.as_ref(), n).await?;
            let last = rows.last().map(|r| r.id().clone());
            Ok((rows, last))
        })
    }

    /// The result of every finished order, by order id.
    fn results_stream(&self, page: usize) -> BoxStream<'_, Result<ProvisioningResult, StoreError>> {
        paged(page, move |after: Option<OrderId>, n| async move {
            let rows = self.results_page(after.as_ref(), n).await?;
            let last = rows.last().map(|r| r.order_id.clone());
            Ok((rows, last))
        })
    }

    /// Every assignment request, by id.
    fn requests_stream(
        &self,
        page: usize,
    ) -> BoxStream<'_, Result<autoprov_core::AssignmentRequest, StoreError>> {
        paged(
            page,
            move |after: Option<autoprov_core::RequestId>, n| async move {
                let rows = self.requests_page(after.as_ref(), n).await?;
                let next = rows.last().map(|r| r.id.clone());
                Ok((rows, next))
            },
        )
    }

    /// What autoprov holds as its own, every owner, in pages of `page`.
    fn owned_values_stream(
        &self,
        page: usize,
    ) -> BoxStream<'_, Result<autoprov_core::OwnedValues, StoreError>> {
        paged(
            page,
            move |after: Option<autoprov_core::OwnerId>, n| async move {
                let rows = self.owned_values_page(after.as_ref(), n).await?;
                let next = rows.last().map(|r| r.owner.clone());
                Ok((rows, next))
            },
        )
    }

    /// Every job run, oldest first.
    fn job_runs_stream(&self, page: usize) -> BoxStream<'_, Result<JobRun, StoreError>> {
        paged(page, move |after: Option<String>, n| async move {
            let rows = self.job_runs_page(after.as_deref(), n).await?;
            let last = rows.last().map(|r| r.id.clone());
            Ok((rows, last))
        })
    }

    /// A connection's synchronized resources, by key.
    fn resources_stream<'a>(
        &'a self,
        connection: &'a ConnectionId,
        page: usize,
    ) -> BoxStream<'a, Result<Resource, StoreError>> {
        paged(page, move |after: Option<ResourceId>, n| async move {
            let rows = self.resources_page(connection, after.as_ref(), n).await?;
            let last = rows.last().map(|r| r.id.clone());
            Ok((rows, last))
        })
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

fn paged<'a, K, T, F, Fut>(page: usize, fetch: F) -> BoxStream<'a, Result<T, StoreError>>
where
    K: Send + 'a,
    T: Send + 'a,
    F: Fn(Option<K>, usize) -> Fut + Send + Sync + 'a,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<K>), StoreError>> + Send + 'a,
{
    let page = page.max(1);
    // State: the cursor, or None once the last page was read.
    stream::unfold(Some(None), move |cursor: Option<Option<K>>| {
        let next_page = cursor.map(|after| fetch(after, page));
        async move {
            match next_page?.await {
                Ok((rows, last)) => {
                    let next = if rows.len() < page { None } else { Some(last) };
                    if rows.is_empty() {
                        return None;
                    }
                    Some((stream::iter(rows.into_iter().map(Ok)).left_stream(), next))
                }
                Err(e) => Some((stream::iter(std::iter::once(Err(e))).right_stream(), None)),
            }
        }
    })
    .flatten()
    .boxed()
}
