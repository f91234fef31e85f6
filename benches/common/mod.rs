//! Helpers shared by the criterion benches.

/// The output of a future that must be ready on its first poll (a cache hit never waits), so
/// a bench measures the work, not an executor.
pub fn completed<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("a cache hit never waits"),
    }
}
