//! event-relay: the table's stream → the queues. Sends the outbox of each accepted webhook
//! (ARCHITECTURE.md, Outbox), in order, each message once.

mod handler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), cxbridge::runtime::Error> {
    let app = cxbridge::runtime::init(handler::App::init()).await?;
    cxbridge::runtime::run_stream(app, handler::handle).await
}
