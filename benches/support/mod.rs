//! What the dispatch benchmarks share: a connector that only waits, and the orders they send.

use async_trait::async_trait;
use autoprov::connector::{
    Capabilities, Connector, ConnectorError, ConnectorInfo, Executed, ExportRequest, ExportStream,
    Fulfillment, Operation,
};
use autoprov::core::{
    ChangeType, Changes, Owner, ProvisioningOrder, Resource, ResourceType, ResourceTypeRef,
};
use std::sync::Arc;
use std::time::Duration;

/// A connector that only waits `latency` (zero: does nothing) and reports success.
#[derive(Debug)]
pub struct Sleeper {
    info: ConnectorInfo,
    latency: Duration,
}

#[async_trait]
impl Connector for Sleeper {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }
    async fn check(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn fulfill(&self, o: &ProvisioningOrder) -> Result<Fulfillment, ConnectorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        Ok(Fulfillment::Executed(Executed::new(
            o.resource
                .as_ref()
                .map(|r| r.id.clone())
                .unwrap_or_else(|| "x".into()),
        )))
    }
    async fn export(&self, _r: ExportRequest) -> Result<ExportStream, ConnectorError> {
        Err(ConnectorError::unsupported(
            Operation::Export,
            "bench connector",
        ))
    }
}

/// A [`Sleeper`] on connection `conn`.
pub fn sleeper(latency: Duration) -> Arc<Sleeper> {
    Arc::new(Sleeper {
        info: ConnectorInfo::new("bench.sleeper", "conn", Capabilities::full()),
        latency,
    })
}

/// `n` Modified orders on connection `conn`, their ids prefixed with `prefix`.
pub fn orders(n: usize, prefix: &str) -> Vec<ProvisioningOrder> {
    let rt = ResourceType::new("rt", "AD_User", "Directory_User", "AD_Entry", "conn");
    (0..n)
        .map(|i| {
            let mut changes = Changes::default();
            changes.set("department", "Sales").set("title", "Engineer");
            ProvisioningOrder {
                order_id: format!("{prefix}o{i:07}").into(),
                assigned_resource_type_id: Some(format!("u{i}/rt").as_str().into()),
                change_type: ChangeType::Modified,
                workflow_instance_id: None,
                owner: Some(Owner::new(format!("u{i}"), format!("user{i}"))),
                resource_type: ResourceTypeRef::of(&rt),
                connection: Some("conn".into()),
                changes,
                resource: Some(Resource::new(format!(
                    "CN=user{i},OU=Staff,DC=example,DC=test"
                ))),
                depends_on: vec![],
                not_before: None,
                arguments: Default::default(),
            }
        })
        .collect()
}
