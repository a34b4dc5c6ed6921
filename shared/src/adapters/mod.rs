//! The adapters: the ports' implementations over AWS (ARCHITECTURE.md, Layers). The domain
//! modules hold the ports and the logic behind them; the code that talks to DynamoDB, SQS,
//! Secrets Manager, EventBridge, CXone and the targets' HTTPS endpoints is here.

pub mod cxone;
pub mod delivery;
pub mod dynamodb;
pub mod secrets_manager;
pub mod sqs;
