//! A thread of its own running one task on a current-thread tokio runtime
//! until told to stop: the HTTP API's and the metrics pipeline's.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The running thread; dropping it stops the task and joins the thread.
pub(super) struct ServiceThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServiceThread {
    /// Runs `task(stopped)` on a thread named `name`; `stopped` resolves
    /// when the handle is stopped or dropped. Building the runtime and
    /// spawning the thread fail here.
    pub(super) fn spawn<F, Fut>(name: &str, task: F) -> io::Result<Self>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || rt.block_on(task(stopped)))?;
        Ok(ServiceThread {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Tells the task to stop and waits for the thread.
    pub(super) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServiceThread {
    fn drop(&mut self) {
        self.stop();
    }
}
