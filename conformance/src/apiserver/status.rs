//! `Status` bodies, worded as the real API server words them.

use serde::Serialize;

use super::store::Endpoint;

/// A failed API call: becomes a `kind: Status` body with `status: Failure`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Details>>,
}

/// `Status.details`, in the real server's field order.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Details {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Details>,
    code: u16,
}

/// The `reason` the real server gives for an HTTP status code.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn object_details(ep: Endpoint, name: &str) -> Details {
    Details {
        name: Some(name.to_owned()),
        group: (!ep.group.is_empty()).then(|| ep.group.to_owned()),
        kind: Some(ep.res.plural().to_owned()),
        uid: None,
    }
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
        }
    }

    /// 404: `pods "x" not found`.
    pub fn not_found(ep: Endpoint, name: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(object_details(ep, name))),
            ..ApiError::new(404, format!("{} \"{name}\" not found", ep.qualified()))
        }
    }

    /// 409 AlreadyExists: `pods "x" already exists`.
    pub fn already_exists(ep: Endpoint, name: &str) -> ApiError {
        ApiError {
            reason: "AlreadyExists",
            details: Some(Box::new(object_details(ep, name))),
            ..ApiError::new(409, format!("{} \"{name}\" already exists", ep.qualified()))
        }
    }

    /// 409 Conflict on a stale `resourceVersion` (or a failed delete precondition).
    pub fn conflict(ep: Endpoint, name: &str) -> ApiError {
        ApiError {
            details: Some(Box::new(object_details(ep, name))),
            ..ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    ep.qualified()
                ),
            )
        }
    }

    /// 422 Invalid: `Pod "x" is invalid: <what>`.
    pub fn invalid(ep: Endpoint, name: &str, what: &str) -> ApiError {
        let kind = if ep.group.is_empty() {
            ep.res.kind().to_owned()
        } else {
            format!("{}.{}", ep.res.kind(), ep.group)
        };
        ApiError {
            details: Some(Box::new(Details {
                name: Some(name.to_owned()),
                group: (!ep.group.is_empty()).then(|| ep.group.to_owned()),
                kind: Some(ep.res.kind().to_owned()),
                uid: None,
            })),
            ..ApiError::new(422, format!("{kind} \"{name}\" is invalid: {what}"))
        }
    }

    /// 404 for a path the server does not serve.
    pub fn unknown_path() -> ApiError {
        ApiError {
            details: Some(Box::default()),
            ..ApiError::new(404, "the server could not find the requested resource")
        }
    }

    /// 405 for a verb the path does not support.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            details: Some(Box::default()),
            ..ApiError::new(
                405,
                "the server does not allow this method on the requested resource",
            )
        }
    }

    /// 401 exactly as the real server (`--anonymous-auth=false`) answers a bad or missing token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized")
    }

    /// The JSON `Status` body.
    pub fn body(&self) -> Vec<u8> {
        failure_body(
            self.code,
            self.reason,
            &self.message,
            self.details.as_deref(),
        )
    }
}

/// A `status: Failure` body.
pub(crate) fn failure_body(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<&Details>,
) -> Vec<u8> {
    serde_json::to_vec(&StatusBody {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Failure",
        message,
        reason,
        details,
        code,
    })
    .expect("a Status serializes")
}

/// The `status: Success` body a DELETE of a custom resource (or an event) returns.
pub(crate) fn success_body(details: &Details) -> Vec<u8> {
    serde_json::to_vec(&StatusBody {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Success",
        message: "",
        reason: "",
        details: Some(details),
        code: 200,
    })
    .expect("a Status serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthorized_is_byte_exact() {
        assert_eq!(
            String::from_utf8(ApiError::unauthorized().body()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }
}
