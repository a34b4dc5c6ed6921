//! retry-drainer: SQS `jobs` queue → re-run outbound CXone work.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(cxbridge::Base::init()).await?;
    cxbridge::runtime::run_sqs(app, app.config.probe, handler::handle).await
}
