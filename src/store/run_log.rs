//! The SQLite run log behind the engine's `RunLog` interface.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{ItemWriter, RoutingWriter, Store};
use crate::engine::log::{
    self, Claim, ClaimedItem, DigestFigures, Fence, IdsSender, ItemResult, ItemSink, NewArtifact, NewRun, PreviousDigest, QueuedItem,
    RunLog, RunStatus, ShareProgress, SharedStep, StepRows,
};

#[async_trait]
impl RunLog for Store {
    async fn start_run(&self, r: NewRun<'_>) -> anyhow::Result<i64> {
        Ok(Store::start_run(self, r).await?)
    }
    async fn reopen_run(&self, run_id: i64) -> anyhow::Result<()> {
        Ok(Store::reopen_run(self, run_id).await?)
    }
    async fn finish_run(&self, run_id: i64, status: RunStatus, error: Option<&str>) -> anyhow::Result<()> {
        Ok(Store::finish_run(self, run_id, status, error).await?)
    }
    fn step_rows(&self, run_id: i64) -> Box<dyn StepRows> {
        Box::new(self.step_row_writer(run_id))
    }
    async fn add_artifacts(&self, run_id: i64, artifacts: &[NewArtifact]) -> anyhow::Result<()> {
        Ok(Store::add_artifacts(self, run_id, artifacts).await?)
    }
    fn item_sink(&self) -> Box<dyn ItemSink> {
        Box::new(self.item_writer())
    }
    async fn done_keys(&self, run_id: i64, step_id: &str) -> anyhow::Result<HashSet<String>> {
        Ok(Store::done_keys(self, run_id, step_id).await?)
    }
    fn item_outputs(&self, run_id: i64, step_id: &str) -> BoxStream<'static, anyhow::Result<Option<String>>> {
        Store::item_outputs(self, run_id, step_id).map(|r| r.map_err(anyhow::Error::from)).boxed()
    }
    async fn claim_key(&self, key: &str, workflow: &str, run_id: i64, step_id: &str, item_key: &str) -> anyhow::Result<Claim> {
        Ok(Store::claim_key(self, key, workflow, run_id, step_id, item_key).await?)
    }
    async fn check_key(&self, key: &str, run_id: i64) -> anyhow::Result<Claim> {
        Ok(Store::check_key(self, key, run_id).await?)
    }
    async fn reclaim_key(&self, key: &str, run_id: i64) -> anyhow::Result<bool> {
        Ok(Store::reclaim_key(self, key, run_id).await?)
    }
    async fn mark_sent(&self, key: &str, run_id: i64, detail: Option<&str>) -> anyhow::Result<()> {
        Ok(Store::mark_sent(self, key, run_id, detail).await?)
    }
    async fn release_key(&self, key: &str, run_id: i64) -> anyhow::Result<()> {
        Ok(Store::release_key(self, key, run_id).await?)
    }
    async fn routed_ids(&self, scope: &str, run_id: i64) -> anyhow::Result<Option<String>> {
        Ok(Store::routed_ids(self, scope, run_id).await?)
    }
    fn routing_writer(&self, scope: &str, run_id: i64) -> (Box<dyn log::RoutingWriter>, IdsSender) {
        let (w, ids) = Store::routing_writer(self, scope, run_id);
        (Box::new(w), Arc::new(move |json: String| ids.send_blocking(json)))
    }
    async fn previous_digest(&self, scope: &str, team: &str, before_run: i64) -> anyhow::Result<Option<PreviousDigest>> {
        Ok(Store::previous_digest(self, scope, team, before_run).await?)
    }
    async fn cancel_requested(&self, run_id: i64) -> anyhow::Result<Option<log::CancelRequest>> {
        Ok(Store::cancel_requested(self, run_id).await?)
    }
    async fn share_step(&self, s: &SharedStep) -> anyhow::Result<()> {
        Ok(Store::share_step(self, s).await?)
    }
    async fn queue_items(&self, run_id: i64, step_id: &str, items: &[QueuedItem]) -> anyhow::Result<()> {
        Ok(Store::queue_items(self, run_id, step_id, items).await?)
    }
    async fn claim_items(&self, run_id: i64, step_id: &str, n: u32) -> anyhow::Result<Vec<ClaimedItem>> {
        Ok(Store::claim_items(self, run_id, step_id, n).await?)
    }
    async fn shared_steps(&self) -> anyhow::Result<Vec<SharedStep>> {
        Ok(Store::shared_steps(self).await?)
    }
    async fn share_progress(&self, run_id: i64, step_id: &str) -> anyhow::Result<ShareProgress> {
        Ok(Store::share_progress(self, run_id, step_id).await?)
    }
    async fn stop_share(&self, run_id: i64, step_id: &str) -> anyhow::Result<()> {
        Ok(Store::stop_share(self, run_id, step_id).await?)
    }
    async fn close_share(&self, run_id: i64, step_id: &str) -> anyhow::Result<()> {
        Ok(Store::close_share(self, run_id, step_id).await?)
    }
    async fn item_counts(&self, run_id: i64, step_id: &str) -> anyhow::Result<(u64, u64, u64)> {
        Ok(Store::step_item_counts(self, run_id, step_id).await?)
    }
    async fn claim_key_fenced(&self, key: &str, workflow: &str, run_id: i64, item_key: &str, fence: &Fence) -> anyhow::Result<Claim> {
        Ok(Store::claim_key_fenced(self, key, workflow, run_id, item_key, fence).await?)
    }
    async fn mark_sent_fenced(&self, key: &str, run_id: i64, detail: Option<&str>, fence: &Fence) -> anyhow::Result<()> {
        Ok(Store::mark_sent_fenced(self, key, run_id, detail, fence).await?)
    }
}

#[async_trait]
impl ItemSink for ItemWriter {
    async fn write(&self, r: ItemResult) {
        ItemWriter::write(self, r).await
    }
    async fn flush(&self) -> anyhow::Result<()> {
        Ok(ItemWriter::flush(self).await?)
    }
    fn failure(&self) -> Option<String> {
        ItemWriter::failure(self)
    }
}

#[async_trait]
impl log::RoutingWriter for RoutingWriter {
    async fn finish(self: Box<Self>, digests: Vec<DigestFigures>) -> anyhow::Result<u64> {
        Ok(RoutingWriter::finish(*self, digests).await?)
    }
}
