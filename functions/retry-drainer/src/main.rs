//! retry-drainer: SQS `jobs` queue → re-run outbound CXone work, check executions past
//! their deadline, and keep what cannot run in the DLQ with its reason.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(handler::App::init()).await?;
    cxbridge::runtime::run_sqs(app, app.base.config.probe, handler::handle).await
}
