//! Group commit: callers that arrive together share one statement. A loop takes the first
//! waiting item and whatever else is queued behind it, runs one batch, and answers each caller.
//! Nothing waits for a batch to fill: one caller alone goes through at once, and a burst goes
//! through in a few statements instead of one per caller. Several loops take batches from the
//! same queue, so one batch fills while another commits.

use std::{future::Future, sync::Arc};
use tokio::sync::{Mutex, mpsc, oneshot};

/// An item waiting for its batch, with where its answer goes.
type Waiting<I, O> = (I, oneshot::Sender<O>);

/// Hands items to the group-commit loops; cheap to clone. The loops end when every handle is
/// dropped.
#[derive(Debug)]
pub struct GroupCommit<I, O> {
    queue: mpsc::Sender<Waiting<I, O>>,
}

impl<I, O> Clone for GroupCommit<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> GroupCommit<I, O> {
    /// Starts `loops` loops that run `work` on batches of at most `max_batch` items. `work`
    /// answers with one output per input, in order; a caller whose output is missing gets
    /// `None`. `name` labels the batch-size histogram `cmdbus_batch_size`.
    pub fn start<F, Fut>(name: &'static str, loops: usize, max_batch: usize, work: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let work = Arc::new(work);
        for _ in 0..loops.max(1) {
            let receiver = Arc::clone(&receiver);
            let work = Arc::clone(&work);
            tokio::spawn(async move {
                let sizes = metrics::histogram!("cmdbus_batch_size", "batch" => name);
                while let Some(batch) = next_batch(&receiver, max_batch).await {
                    sizes.record(batch.len() as f64);
                    let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) =
                        batch.into_iter().unzip();
                    let outputs = work(items).await;
                    for (reply, output) in replies.into_iter().zip(outputs) {
                        // The caller may have stopped waiting; the work is done all the same.
                        let _ = reply.send(output);
                    }
                }
            });
        }
        Self { queue }
    }

    /// Runs `item` in the next batch and returns its output; `None` when the loops are gone or
    /// the batch gave no output for it.
    pub async fn run(&self, item: I) -> Option<O> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

/// Takes the first waiting item and whatever else is queued behind it, up to `max_batch`.
async fn next_batch<T>(receiver: &Mutex<mpsc::Receiver<T>>, max_batch: usize) -> Option<Vec<T>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = Vec::with_capacity(max_batch.min(receiver.len() + 1));
    batch.push(first);
    while batch.len() < max_batch {
        match receiver.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn callers_that_arrive_together_share_a_batch_and_each_gets_its_own_answer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let taken = Arc::new(AtomicUsize::new(0));
        let (seen, counted) = (Arc::clone(&sizes), Arc::clone(&taken));
        let (gate, opened) = tokio::sync::watch::channel(false);
        let group = GroupCommit::start("test", 1, 100, move |items: Vec<u32>| {
            let (seen, counted) = (Arc::clone(&seen), Arc::clone(&counted));
            let mut opened = opened.clone();
            async move {
                counted.fetch_add(items.len(), Ordering::SeqCst);
                // The first batch waits until every other caller is queued behind it.
                let _ = opened.wait_for(|open| *open).await;
                seen.lock().map(|mut s| s.push(items.len())).ok();
                items.into_iter().map(|n| n * 2).collect::<Vec<_>>()
            }
        });
        let calls: Vec<_> = (0..10)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move { group.run(n).await })
            })
            .collect();
        let queued =
            |group: &GroupCommit<u32, u32>| group.queue.max_capacity() - group.queue.capacity();
        while taken.load(Ordering::SeqCst) + queued(&group) < 10 {
            tokio::task::yield_now().await;
        }
        let _ = gate.send(true);
        for (n, call) in (0u32..).zip(calls) {
            assert_eq!(call.await.ok().flatten(), Some(n * 2));
        }
        let sizes = sizes.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(sizes.len() <= 2, "batches: {sizes:?}");
    }

    #[tokio::test]
    async fn a_missing_output_answers_none() {
        let group = GroupCommit::start("test", 1, 10, |_items: Vec<u32>| async {
            Vec::<u32>::new()
        });
        assert_eq!(group.run(1).await, None);
    }
}
