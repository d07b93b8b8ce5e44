//! Signing in (a bearer token pasted into a form, or OIDC) and out. A sign-in form and an OIDC
//! redirect are bound to the browser by a short-lived `__Host-` cookie, so another site cannot sign
//! a person in to its own account (login CSRF). Each sign-in and sign-out is audited.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use super::pages::{self, Nav, error_summary};
use super::session::{
    SESSION_COOKIE, SIGNIN_COOKIE, check_same_origin, cookie, random_token, same_secret,
    set_cookie, set_lax_cookie,
};
use super::{Console, ConsoleError, Signed};
use crate::api::auth::{self, Caller, READERS, token_hash};
use crate::audit::NewAuditEntry;

/// How long a sign-in form or an OIDC redirect stays usable.
const SIGNIN_COOKIE_SECS: i64 = 600;

/// `next` if it is a console page of this origin, else the console's home: never an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/console/sign-") =>
        {
            n.to_owned()
        }
        _ => "/console/".to_owned(),
    }
}

fn with_cookie(mut r: Response, value: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

fn sign_in_page(
    st: &Console,
    browser: &str,
    next: &str,
    errors: &[String],
    status: StatusCode,
) -> Response {
    let body = html! {
        (error_summary(errors))
        @if let Some(o) = &st.oidc {
            p {
                a.button href={ "/console/oidc/start?next=" (super::form_urlencoded_value(next)) } { (o.label()) }
            }
            h2 { "Or sign in with an access token" }
        }
        form method="post" action="/console/sign-in" novalidate {
            input type="hidden" name="csrf" value=(browser);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="token" { "Access token" }
                p.hint #token-hint { "The token an administrator made for you with " code { "callvault tokens create" } "." }
                input #token type="password" name="token" autocomplete="off" spellcheck="false" aria-describedby="token-hint" required;
            }
            button type="submit" { "Sign in" }
        }
    };
    let r = pages::respond(status, pages::page("Sign in", None, Nav::None, body));
    with_cookie(
        r,
        set_lax_cookie(SIGNIN_COOKIE, browser, SIGNIN_COOKIE_SECS),
    )
}

/// The browser's sign-in binding, or a new one.
fn browser_binding(headers: &HeaderMap) -> String {
    cookie(headers, SIGNIN_COOKIE)
        .filter(|v| v.len() == 43)
        .map_or_else(random_token, str::to_owned)
}

/// `GET /console/sign-in[?next=]`.
pub(super) async fn page(
    State(st): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(q.get("next").map(String::as_str));
    sign_in_page(&st, &browser_binding(&headers), &next, &[], StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn audit_sign_in(st: &Console, caller: &Caller, how: &str) -> Result<(), ConsoleError> {
    st.api
        .catalog
        .append_audit(
            NewAuditEntry::new(
                st.api.clock.now(),
                &caller.actor,
                "console.sign_in",
                "console",
            )
            .details(&json!({ "method": how, "role": caller.role.as_str() })),
        )
        .await
        .map_err(|e| ConsoleError::Api(crate::api::ApiError::internal(&e)))?;
    Ok(())
}

/// Opens a session for `caller` and sends the browser to `next`.
fn open_session(
    st: &Console,
    caller: Caller,
    hash: Option<[u8; 32]>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    next: &str,
    landing: bool,
) -> Response {
    let now = st.api.clock.now();
    let lifetime = chrono::Duration::from_std(st.api.config.console.session_lifetime)
        .unwrap_or(chrono::Duration::hours(8));
    let expires = until.map_or(now + lifetime, |u| u.min(now + lifetime));
    let id = st.sessions.create(caller, hash, now, expires);
    // back from the identity provider, the browser is still on another site's navigation, so a
    // SameSite=Strict cookie set now would not come with a redirect: a page of ours goes on instead
    let r = if landing {
        landing_page(next)
    } else {
        Redirect::to(next).into_response()
    };
    let r = with_cookie(
        r,
        set_cookie(SESSION_COOKIE, &id, (expires - now).num_seconds()),
    );
    with_cookie(r, set_lax_cookie(SIGNIN_COOKIE, "", 0))
}

/// The page that follows an OIDC sign-in: goes on to `next` at once (a refresh from our own page is
/// a same-site navigation), with a link for a browser that does not.
fn landing_page(next: &str) -> Response {
    let markup = html! {
        (maud::DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content={ "0;url=" (next) };
                title { "Signed in - callvault" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body {
                main #main .width {
                    h1 { "Signed in" }
                    p { a href=(next) { "Continue to the console" } }
                }
            }
        }
    };
    pages::respond(StatusCode::OK, markup)
}

/// `POST /console/sign-in` with a bearer token.
pub(super) async fn with_token(
    State(st): State<Console>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Result<Response, ConsoleError> {
    check_same_origin(&headers)?;
    let browser = cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    if browser.is_empty() || !same_secret(&f.csrf, browser) {
        return Err(ConsoleError::Csrf);
    }
    let next = safe_next(f.next.as_deref());
    let token = f.token.trim();
    let refuse = |msg: &str| {
        sign_in_page(
            &st,
            browser,
            &next,
            &[msg.to_owned()],
            StatusCode::UNAUTHORIZED,
        )
    };
    if token.is_empty() {
        return Ok(refuse("Enter your access token"));
    }
    let caller = match auth::authenticate(&st.api, token).await {
        Ok(c) => c,
        Err(crate::api::ApiError::InvalidToken | crate::api::ApiError::Unauthenticated) => {
            return Ok(refuse(
                "The access token is not valid: it may be mistyped, revoked or expired",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if caller.require(READERS).is_err() {
        return Ok(refuse(
            "This token's role cannot use the console: it is for supervisors and compliance staff",
        ));
    }
    audit_sign_in(&st, &caller, "token").await?;
    let (hash, until) = match &caller.credential {
        auth::Credential::Token { .. } => (Some(token_hash(token)), None),
        auth::Credential::Jwt { until } => (None, Some(*until)),
    };
    Ok(open_session(&st, caller, hash, until, &next, false))
}

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: ends the session (audited) and clears the cookie.
pub(super) async fn sign_out(
    State(st): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    signed.check_csrf(&headers, f.csrf.as_deref())?;
    st.sessions.remove(signed.id());
    st.api
        .catalog
        .append_audit(NewAuditEntry::new(
            st.api.clock.now(),
            &signed.caller.actor,
            "console.sign_out",
            "console",
        ))
        .await
        .map_err(|e| ConsoleError::Api(crate::api::ApiError::internal(&e)))?;
    Ok(with_cookie(
        Redirect::to("/console/sign-in").into_response(),
        set_cookie(SESSION_COOKIE, "", 0),
    ))
}

/// `GET /console/oidc/start[?next=]`: to the identity provider.
pub(super) async fn oidc_start(
    State(st): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(oidc) = &st.oidc else {
        return crate::api::ApiError::NotFound.into_response();
    };
    let browser = browser_binding(&headers);
    let next = safe_next(q.get("next").map(String::as_str));
    match oidc.start(&browser, next.clone()).await {
        Ok(start) => with_cookie(
            Redirect::to(&start.url).into_response(),
            set_lax_cookie(SIGNIN_COOKIE, &browser, SIGNIN_COOKIE_SECS),
        ),
        Err(e) => {
            warn!(error = %e, "oidc sign-in could not start");
            sign_in_page(
                &st,
                &browser,
                &next,
                &["The identity provider could not be reached. Try again shortly, or sign in with an access token".to_owned()],
                StatusCode::BAD_GATEWAY,
            )
        }
    }
}

/// `GET /console/oidc/callback?code=&state=` (or `error=`): back from the identity provider.
pub(super) async fn oidc_callback(
    State(st): State<Console>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let Some(oidc) = &st.oidc else {
        return Ok(crate::api::ApiError::NotFound.into_response());
    };
    let browser = browser_binding(&headers);
    let fail = |msg: &str| {
        sign_in_page(
            &st,
            &browser,
            "/console/",
            &[msg.to_owned()],
            StatusCode::UNAUTHORIZED,
        )
    };
    if let Some(error) = q.get("error") {
        warn!(error = %error, "the identity provider refused a sign-in");
        return Ok(fail("The identity provider did not sign you in"));
    }
    let (Some(state), Some(code)) = (q.get("state"), q.get("code")) else {
        return Ok(fail("The identity provider's answer was incomplete"));
    };
    let found = oidc
        .finish(
            cookie(&headers, SIGNIN_COOKIE),
            state,
            code,
            st.api.clock.now(),
        )
        .await;
    match found {
        Ok((caller, until, next)) => {
            if caller.require(READERS).is_err() {
                return Ok(fail(
                    "Your account's role cannot use the console: it is for supervisors and compliance staff",
                ));
            }
            audit_sign_in(&st, &caller, "oidc").await?;
            Ok(open_session(
                &st,
                caller,
                None,
                Some(until),
                &safe_next(Some(&next)),
                true,
            ))
        }
        Err(e) => {
            warn!(error = %e, "oidc sign-in failed");
            let msg = match e {
                super::oidc::OidcSignInError::State => {
                    "The sign-in took too long or was started elsewhere: try again"
                }
                super::oidc::OidcSignInError::Provider(_) => {
                    "The identity provider could not be reached: try again shortly"
                }
                super::oidc::OidcSignInError::Refused(_) => {
                    "The identity provider did not sign you in"
                }
                super::oidc::OidcSignInError::Token => {
                    "Your account could not be signed in: its answer was not valid or gives no console role"
                }
            };
            Ok(fail(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_only_ever_a_console_page_here() {
        assert_eq!(
            safe_next(Some("/console/search?x=1")),
            "/console/search?x=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/v1/recordings",
            "/console/sign-in",
            "/console/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
    }
}
