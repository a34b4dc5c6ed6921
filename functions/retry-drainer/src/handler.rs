use aws_lambda_events::event::sqs::SqsMessage;
use cxbridge::Base;

/// Runs one job. Until job execution lands, every job is reported as failed so that it is
/// retried and, once the queue's receive count is spent, kept in the DLQ: never dropped.
pub async fn handle(_app: &'static Base, message: SqsMessage) -> Result<(), String> {
    let id = message.message_id.as_deref().unwrap_or("?");
    Err(format!("job {id}: running jobs is not implemented yet"))
}
