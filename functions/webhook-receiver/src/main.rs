//! webhook-receiver: Verifies, de-duplicates, normalises and routes CXone webhooks.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(cxbridge::Base::init()).await?;
    cxbridge::runtime::run_http(app, app.config.probe, handler::handle).await
}
