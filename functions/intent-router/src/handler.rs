use cxbridge::http::RequestMeta;
use cxbridge::{ApiError, Base};
use lambda_http::{Body, Request, Response};

/// Answers every route of this function with `501 not_implemented` until its logic lands.
pub async fn handle(
    _app: &'static Base,
    _req: Request,
    meta: RequestMeta,
) -> Result<Response<Body>, ApiError> {
    Err(ApiError::not_implemented(meta.route))
}
