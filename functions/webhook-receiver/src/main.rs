//! webhook-receiver: verifies, de-duplicates, normalises and routes CXone webhooks and the
//! requests of Studio's REST API action.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(handler::App::init()).await?;
    cxbridge::runtime::run_http(app, app.base.config.probe, handler::handle).await
}
