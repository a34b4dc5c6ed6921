//! intent-router: turns Cognigy intent results into CXone context updates.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(handler::App::init()).await?;
    cxbridge::runtime::run_http(app, app.base.config.probe, handler::handle).await
}
