//! The endpoints (docs/SERVING.md), and the layer that counts, times and logs every request.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;

use super::App;
use super::error::{ApiError, Code, json_string};
use super::metrics::{self, Gauges};
use super::model::Model;
use super::request::{self, Parsed};
use crate::recourse::{PersonError, Recourse, Settings};

/// A batch larger than this is computed with [`tokio::task::block_in_place`], so the worker's
/// other connections move to another thread meanwhile (about 1.5 ms for 100 refined Loan
/// people; a single person takes microseconds and stays inline).
const INLINE_PEOPLE: usize = 16;

/// A batch is cut across the cores only into parts of at least this many people (each part
/// costs a hand-over to another thread, some tens of microseconds).
const SPLIT_PART_PEOPLE: usize = 32;

/// The deadline is looked at once per this many people.
const DEADLINE_EVERY: usize = 8;

/// What a handler tells the logging layer about its request.
#[derive(Debug, Clone, Default)]
struct Info {
    id: Option<String>,
    batch: Option<usize>,
    model: Option<String>,
}

/// The router, with the counting and logging layer around every endpoint.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/recommend", post(recommend))
        .route("/v1/model", get(model_info))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/admin/reload", post(reload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), observe))
        .with_state(app)
}

/// Count, time and (with `--log-requests`) log each request; echo `X-Request-Id`.
async fn observe(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let endpoint = metrics::endpoint(req.uri().path());
    let header_id = req.headers().get("x-request-id").cloned();
    let method = req.method().clone();
    let mut response = next.run(req).await;
    let latency = start.elapsed();
    let status = response.status();
    app.metrics.record(endpoint, status.as_u16(), latency);
    let info = response
        .extensions_mut()
        .remove::<Info>()
        .unwrap_or_default();
    if let Some(h) = &header_id {
        response.headers_mut().insert("x-request-id", h.clone());
    }
    let id = info
        .id
        .or_else(|| header_id.and_then(|h| h.to_str().ok().map(str::to_owned)));
    tracing::info!(
        target: "carma::request",
        id = id.as_deref().unwrap_or("-"),
        method = %method,
        endpoint = metrics::ENDPOINTS[endpoint],
        status = status.as_u16(),
        latency_us = latency.as_micros() as u64,
        batch = info.batch.unwrap_or(0),
        model = info.model.as_deref().unwrap_or("-"),
        "request"
    );
    response
}

fn with_info(mut r: Response, info: Info) -> Response {
    r.extensions_mut().insert(info);
    r
}

fn json_response(status: StatusCode, body: Vec<u8>, model: &Model) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&model.fingerprint) {
        r.headers_mut().insert("x-carma-model", v);
    }
    r
}

/// `POST /v1/recommend`.
async fn recommend(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    let Ok(_slot) = Arc::clone(&app.slots).try_acquire_owned() else {
        app.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
        return ApiError::new(
            Code::Overloaded,
            format!(
                "{} requests are being answered (--max-concurrent); retry shortly",
                app.limits.max_concurrent
            ),
        )
        .into_response();
    };
    let deadline = start + app.limits.timeout;
    // The model this request is answered with, from its arrival to its answer, whatever a
    // reload does meanwhile (even while its body is still coming).
    let model = app.current.get();
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ok = ct
            .to_str()
            .ok()
            .and_then(|s| s.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !ok {
            return ApiError::new(
                Code::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            )
            .into_response();
        }
    }
    let too_large = || {
        ApiError::new(
            Code::BodyTooLarge,
            format!(
                "the body is over the limit of {} bytes (--max-body)",
                app.limits.max_body
            ),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > app.limits.max_body as u64) {
        return too_large().into_response();
    }
    let limited = http_body_util::Limited::new(body, app.limits.max_body);
    let bytes = match tokio::time::timeout_at(deadline.into(), limited.collect()).await {
        Err(_) => {
            return ApiError::new(
                Code::RequestTimeout,
                format!(
                    "the body did not arrive within {} ms (--timeout-ms)",
                    app.limits.timeout.as_millis()
                ),
            )
            .into_response();
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return too_large().into_response();
        }
        Ok(Err(e)) => {
            return ApiError::new(
                Code::MalformedJson,
                format!("the body could not be read: {e}"),
            )
            .into_response();
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let parsed = match request::parse(&model, &bytes, app.limits.max_batch) {
        Ok(p) => p,
        Err(mut e) => {
            let id = request::request_id(&bytes);
            e.id = id.as_ref().map(|(json, _)| json.clone());
            let info = Info {
                id: id.map(|(_, text)| text),
                batch: None,
                model: Some(model.fingerprint.clone()),
            };
            return with_info(e.into_response(), info);
        }
    };
    let n = parsed.len();
    // A large batch on an otherwise quiet server is cut across the cores.
    let busy = app.limits.max_concurrent - app.slots.available_permits();
    let parts = (app.workers / busy.max(1))
        .min(n / SPLIT_PART_PEOPLE)
        .max(1);
    let parsed = Arc::new(parsed);
    let result = if parts > 1 {
        answer_split(Arc::clone(&model), Arc::clone(&parsed), deadline, parts).await
    } else if n > INLINE_PEOPLE {
        tokio::task::block_in_place(|| answer(&model, &parsed, deadline))
    } else {
        answer(&model, &parsed, deadline)
    };
    let info = Info {
        id: parsed.id.as_ref().map(|(_, text)| text.clone()),
        batch: Some(n),
        model: Some(model.fingerprint.clone()),
    };
    let response = match result {
        Ok(body) => {
            app.metrics.people.fetch_add(n as u64, Ordering::Relaxed);
            json_response(StatusCode::OK, body, &model)
        }
        Err(mut e) => {
            e.id = parsed.id.as_ref().map(|(json, _)| json.clone());
            e.into_response()
        }
    };
    with_info(response, info)
}

/// The answer's body: `{"id", "model", "warnings", "result" | "results"}`, each person's object
/// exactly as `carma recommend --format json` writes it.
fn answer(model: &Model, p: &Parsed, deadline: Instant) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::with_capacity(128 + p.len() * 640);
    head(model, p, &mut out);
    people(model, p, 0..p.len(), deadline, &mut out)?;
    tail(p, &mut out);
    Ok(out)
}

/// [`answer`] with the people cut into `parts` ranges computed on the blocking threads at once
/// (the first refusal in person order wins, as in one pass).
async fn answer_split(
    model: Arc<Model>,
    p: Arc<Parsed>,
    deadline: Instant,
    parts: usize,
) -> Result<Vec<u8>, ApiError> {
    let n = p.len();
    let per = n.div_ceil(parts);
    let tasks: Vec<_> = (0..n)
        .step_by(per)
        .map(|a| {
            let (model, p) = (Arc::clone(&model), Arc::clone(&p));
            tokio::task::spawn_blocking(move || {
                let mut out = Vec::with_capacity(per * 640);
                people(&model, &p, a..(a + per).min(n), deadline, &mut out).map(|()| out)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(128 + n * 640);
    head(&model, &p, &mut out);
    for (k, task) in tasks.into_iter().enumerate() {
        let part = task
            .await
            .map_err(|e| ApiError::new(Code::Refused, format!("a worker failed: {e}")))??;
        if k > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&part);
    }
    tail(&p, &mut out);
    Ok(out)
}

/// `{"id":...,"model":...,"warnings":[...],` and the opening of `results` or `result`.
fn head(model: &Model, p: &Parsed, out: &mut Vec<u8>) {
    out.push(b'{');
    if let Some((json, _)) = &p.id {
        out.extend_from_slice(b"\"id\":");
        out.extend_from_slice(json.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"model\":\"");
    out.extend_from_slice(model.fingerprint.as_bytes());
    out.extend_from_slice(b"\",");
    if !p.warnings.is_empty() {
        out.extend_from_slice(b"\"warnings\":[");
        for (k, w) in p.warnings.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            json_string(out, w);
        }
        out.extend_from_slice(b"],");
    }
    out.extend_from_slice(if p.batch {
        b"\"results\":["
    } else {
        b"\"result\":"
    });
}

fn tail(p: &Parsed, out: &mut Vec<u8>) {
    if p.batch {
        out.push(b']');
    }
    out.extend_from_slice(b"}\n");
}

/// The people of `range`, comma-separated; the deadline is looked at every few people.
fn people(
    model: &Model,
    p: &Parsed,
    range: std::ops::Range<usize>,
    deadline: Instant,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    let bundle = model.bundle();
    let d = bundle.n_features();
    let settings = Settings {
        forbid: p.forbid,
        refine: p.refine,
        limits: &p.limits,
        alternatives: p.alternatives,
    };
    let mut recourse = Recourse::new(bundle);
    let mut from = if range.start == 0 {
        0
    } else {
        p.override_ends[range.start - 1]
    };
    for k in range.clone() {
        if k > range.start && (k - range.start) % DEADLINE_EVERY == 0 && Instant::now() > deadline {
            return Err(ApiError::new(
                Code::Timeout,
                format!(
                    "the answer was not ready in time (--timeout-ms, {} people)",
                    p.len()
                ),
            ));
        }
        let to = p.override_ends[k];
        let overrides = p.overrides[from..to].iter().copied();
        from = to;
        let field = |name: &str| {
            if p.batch {
                format!("people[{k}].{name}")
            } else {
                format!("person.{name}")
            }
        };
        let x = &p.xs[k * d..(k + 1) * d];
        let e = recourse
            .explain(bundle, &settings, &model.style, k + 1, x, overrides)
            .map_err(|e| person_error(model, e, &field))?;
        if let Some(id) = &p.ids[k] {
            e.set_id(id);
        }
        if k > range.start {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, &e.json(bundle))
            .map_err(|e| ApiError::new(Code::Refused, format!("cannot write the answer: {e}")))?;
    }
    Ok(())
}

/// A person the core or the limits refused, as an error at the person's field.
fn person_error(model: &Model, e: PersonError, field: &dyn Fn(&str) -> String) -> ApiError {
    use carma_core::error::{Error as CoreError, InputError};
    match e {
        PersonError::MaxChanges(v) => ApiError::at(
            Code::InvalidValue,
            field("max_changes"),
            format!("expected a whole number from 0 to 64, found {v}"),
        ),
        PersonError::MinAboveMax { feature, min, max } => {
            let name = &model.names[feature];
            ApiError::at(
                Code::InvalidValue,
                field(&format!("{name}_min")),
                format!("the minimum of '{name}' ({min}) is above its maximum ({max})"),
            )
        }
        PersonError::Core(CoreError::Input(InputError::NotFinite { index })) => ApiError::at(
            Code::NotFinite,
            field(&model.names[index]),
            "the value does not fit a 32-bit float",
        ),
        PersonError::Core(CoreError::Input(InputError::NotBinary { index })) => ApiError::at(
            Code::NotBinary,
            field(&model.names[index]),
            "a binary feature must be 0 or 1",
        ),
        PersonError::Core(e) => ApiError::new(Code::Refused, format!("cannot recommend: {e}")),
    }
}

/// `GET /v1/model`: `carma inspect --json`.
async fn model_info(State(app): State<Arc<App>>) -> Response {
    let model = app.current.get();
    let info = Info {
        model: Some(model.fingerprint.clone()),
        ..Info::default()
    };
    with_info(
        json_response(StatusCode::OK, model.inspect.clone(), &model),
        info,
    )
}

/// `GET /healthz`: the process answers.
async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"status\":\"live\"}\n",
    )
        .into_response()
}

/// `GET /readyz`: a model is loaded and the server is not shutting down.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        return ApiError::new(Code::ShuttingDown, "the server is shutting down").into_response();
    }
    let model = app.current.get();
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"status\":\"ready\",\"model\":\"");
    body.extend_from_slice(model.fingerprint.as_bytes());
    body.extend_from_slice(b"\",\"generation\":");
    body.extend_from_slice(model.generation.to_string().as_bytes());
    body.extend_from_slice(b"}\n");
    json_response(StatusCode::OK, body, &model)
}

/// `GET /metrics`: Prometheus text.
async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let model = app.current.get();
    let gauges = Gauges {
        in_flight: app.limits.max_concurrent - app.slots.available_permits(),
        max_in_flight: app.limits.max_concurrent,
        model: (&model.fingerprint, model.dataset()),
        generation: model.generation,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.text(&gauges),
    )
        .into_response()
}

/// `POST /v1/admin/reload` (with `--admin-reload`).
async fn reload(State(app): State<Arc<App>>) -> Response {
    if !app.admin_reload {
        return ApiError::new(
            Code::ReloadDisabled,
            "reloading over HTTP is not enabled (start with --admin-reload; SIGHUP always works)",
        )
        .into_response();
    }
    match app.reload("POST /v1/admin/reload").await {
        Ok(model) => {
            let mut body = Vec::new();
            body.extend_from_slice(b"{\"status\":\"reloaded\",\"model\":\"");
            body.extend_from_slice(model.fingerprint.as_bytes());
            body.extend_from_slice(b"\",\"generation\":");
            body.extend_from_slice(model.generation.to_string().as_bytes());
            body.extend_from_slice(b"}\n");
            json_response(StatusCode::OK, body, &model)
        }
        Err(e) => ApiError::new(
            Code::ReloadRefused,
            format!("{}; the served model stays", crate::message(&e)),
        )
        .into_response(),
    }
}

async fn not_found() -> Response {
    ApiError::new(
        Code::NotFound,
        "no such endpoint (see docs/SERVING.md: POST /v1/recommend, GET /v1/model, /healthz, \
         /readyz, /metrics)",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        Code::MethodNotAllowed,
        "this endpoint does not take this method",
    )
    .into_response()
}
