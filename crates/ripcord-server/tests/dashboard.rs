//! The dashboard's edge, over HTTP without a browser: login and its
//! cookies, CSRF on every form, rights checked by the server whatever the
//! page offers, sessions that end with their token, live-update caps.
//! (`ripcord-cli`'s `dashboard` test drives the pages in Chromium.)

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::support::{Result, Running, start};

/// A client that shows redirects instead of following them.
fn browser() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()?)
}

async fn token(h: &Running, name: &str, role: &str) -> Result<String> {
    let (status, made) = h
        .post("/v1/tokens", &json!({"name": name, "role": role}))
        .await?;
    assert_eq!(status, 201, "{made}");
    Ok(made["token"].as_str().unwrap_or_default().to_string())
}

/// The `name=value` of a `Set-Cookie` and its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// `GET path` with a session cookie.
async fn get(
    c: &reqwest::Client,
    h: &Running,
    path: &str,
    cookie: &str,
) -> reqwest::Result<reqwest::Response> {
    c.get(h.url(path)).header(COOKIE, cookie).send().await
}

/// A form body, URL-encoded.
fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The value of a hidden field `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    page.split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// A logged-in person: the session cookie and the CSRF value.
struct Person {
    cookie: String,
    csrf: String,
}

async fn log_in(h: &Running, c: &reqwest::Client, token: &str) -> Result<Person> {
    let form = c.get(h.url("/ui/login")).send().await?;
    let login_cookie = set_cookie(&form, "ripcord_login").unwrap_or_default();
    let pair = login_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let csrf = hidden(&form.text().await?, "csrf");
    let r = c
        .post(h.url("/ui/login"))
        .header(COOKIE, pair)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("next", "/ui/"),
        ]))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login");
    let session = set_cookie(&r, "ripcord_session").unwrap_or_default();
    let cookie = session.split(';').next().unwrap_or_default().to_string();
    let page = get(c, h, "/ui/", &cookie).await?.text().await?;
    Ok(Person {
        cookie,
        csrf: hidden(&page, "csrf"),
    })
}

async fn act(
    h: &Running,
    c: &reqwest::Client,
    who: &Person,
    release: &str,
    form: &[(&str, &str)],
) -> Result<(StatusCode, String)> {
    let r = c
        .post(h.url(&format!("/ui/releases/{release}/actions")))
        .header(COOKIE, &who.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(form))
        .send()
        .await?;
    Ok((r.status(), r.text().await?))
}

#[tokio::test]
async fn logging_in_sets_a_strict_http_only_cookie_for_the_dashboard_only() -> Result {
    let h = start().await?;
    h.release_at_30().await?;
    let vera = token(&h, "vera", "viewer").await?;
    let c = browser()?;

    let away = c.get(h.url("/ui/releases/support-bot-1")).send().await?;
    assert_eq!(away.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        away.headers()[LOCATION],
        "/ui/login?next=%2Fui%2Freleases%2Fsupport-bot-1"
    );

    let form = c.get(h.url("/ui/login")).send().await?;
    assert_eq!(form.status(), StatusCode::OK);
    let login_cookie = set_cookie(&form, "ripcord_login").unwrap_or_default();
    assert!(
        login_cookie.ends_with("; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=600"),
        "{login_cookie}"
    );
    let pair = login_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let csrf = hidden(&form.text().await?, "csrf");
    assert_eq!(pair, format!("ripcord_login={csrf}"));

    let post = |token: &str, cookie: Option<&str>| {
        let mut r = c
            .post(h.url("/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(&[("csrf", csrf.as_str()), ("token", token)]));
        if let Some(cookie) = cookie {
            r = r.header(COOKIE, cookie);
        }
        r.send()
    };
    let wrong = post("rc_not-a-token", Some(&pair)).await?;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "ripcord_session").is_none());
    assert!(
        wrong
            .text()
            .await?
            .contains("token: not a token this server accepts")
    );
    // Without the login form's own cookie (a cross-site post), refused.
    let forged = post(&vera, None).await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&forged, "ripcord_session").is_none());

    let ok = post(&vera, Some(&pair)).await?;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], "/ui/");
    let session = set_cookie(&ok, "ripcord_session").unwrap_or_default();
    assert!(
        session.ends_with("; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=43200"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap_or_default();
    let page = get(&c, &h, "/ui/", cookie).await?;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str()?;
    assert!(csp.starts_with("default-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let page = page.text().await?;
    assert!(
        page.contains("vera <span class=\"role\">(viewer)</span>"),
        "{page}"
    );
    assert!(page.contains("data-release=\"support-bot-1\""), "{page}");
    // The cookie is no credential for the API.
    let api = get(&c, &h, "/v1/releases", cookie).await?;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn every_form_needs_the_sessions_csrf_value_and_the_role_its_action_needs() -> Result {
    let h = start().await?;
    let release = h.release_at_30().await?;
    let c = browser()?;
    let vera = log_in(&h, &c, &token(&h, "vera", "viewer").await?).await?;
    let otto = log_in(&h, &c, &token(&h, "otto", "operator").await?).await?;

    let page = get(&c, &h, &format!("/ui/releases/{release}"), &vera.cookie)
        .await?
        .text()
        .await?;
    assert!(
        !page.contains("<form method=\"post\" action=\"/ui/releases/"),
        "a viewer is offered no action"
    );
    let (status, text) = act(&h, &c, &vera, &release, &pause(&vera.csrf, "k1")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        text.contains("role &quot;viewer&quot; has none of the permissions release actions need"),
        "{text}"
    );

    // The operator's own session, but another session's CSRF value.
    let (status, text) = act(&h, &c, &otto, &release, &pause(&vera.csrf, "k2")).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        text.contains("csrf: the form is not from this session"),
        "{text}"
    );

    let no_reason = [
        ("action", "pause"),
        ("reason", "  "),
        ("idempotency_key", "k3"),
        ("csrf", otto.csrf.as_str()),
    ];
    let (status, text) = act(&h, &c, &otto, &release, &no_reason).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("reason: say why"), "{text}");

    let r = c
        .post(h.url(&format!("/ui/releases/{release}/actions")))
        .header(COOKIE, &otto.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&pause(&otto.csrf, "k4")))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        format!("/ui/releases/{release}?note=done").as_str()
    );
    let view = h.get_json(&format!("/v1/releases/{release}")).await?;
    assert_eq!(view["state"], "paused");
    let audit = audit_by(&h, "otto").await?;
    let actions: Vec<&Value> = audit.iter().map(|r| &r["action"]).collect();
    assert_eq!(
        actions,
        ["dashboard.login", "command.pause"],
        "the audit log names the person's token"
    );
    assert!(
        audit[1].to_string().contains("\"checking\""),
        "the reason is kept: {}",
        audit[1]
    );
    Ok(())
}

/// A pause from the release page's form.
fn pause<'a>(csrf: &'a str, key: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("action", "pause"),
        ("reason", "checking"),
        ("idempotency_key", key),
        ("csrf", csrf),
    ]
}

/// The audit records of `principal` but its token's own, in order.
async fn audit_by(h: &Running, principal: &str) -> Result<Vec<Value>> {
    let text = h
        .http
        .get(h.url("/v1/audit?limit=1000"))
        .bearer_auth(&h.token)
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["principal"] == json!(principal))
        .filter(|r| {
            !r["action"]
                .as_str()
                .unwrap_or_default()
                .starts_with("token.")
        })
        .collect())
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions_and_logging_out_ends_one() -> Result {
    let h = start().await?;
    h.release_at_30().await?;
    let c = browser()?;
    let vera_token = token(&h, "vera", "viewer").await?;
    let first = log_in(&h, &c, &vera_token).await?;
    let second = log_in(&h, &c, &vera_token).await?;
    let home = |who: &Person| {
        c.get(h.url("/ui/"))
            .header(COOKIE, who.cookie.clone())
            .send()
    };
    assert_eq!(home(&first).await?.status(), StatusCode::OK);

    let out = c
        .post(h.url("/ui/logout"))
        .header(COOKIE, &first.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", first.csrf.as_str())]))
        .send()
        .await?;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&out, "ripcord_session").is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(home(&first).await?.status(), StatusCode::SEE_OTHER);
    assert_eq!(home(&second).await?.status(), StatusCode::OK);

    let r = h
        .http
        .delete(h.url("/v1/tokens/vera"))
        .bearer_auth(&h.token)
        .send()
        .await?;
    assert!(r.status().is_success());
    let after = home(&second).await?;
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "a revoked token's session ends"
    );
    Ok(())
}

#[tokio::test]
async fn live_updates_announce_commits_and_are_capped_per_session() -> Result {
    let h = start().await?;
    h.release_at_30().await?;
    let c = browser()?;
    let vera = log_in(&h, &c, &token(&h, "vera", "viewer").await?).await?;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let r = get(&c, &h, "/ui/events", &vera.cookie).await?;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        streams.push(r);
    }
    let fifth = get(&c, &h, "/ui/events", &vera.cookie).await?;
    assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fifth.headers()["retry-after"], "5");
    // Without a session, no stream.
    let anonymous = c.get(h.url("/ui/events")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let mut first = streams.remove(0);
    let ready = tokio::time::timeout(Duration::from_secs(5), first.chunk()).await??;
    let ready = String::from_utf8_lossy(&ready.unwrap_or_default()).to_string();
    assert!(ready.contains("event: ready"), "{ready}");
    let line = format!(
        r#"{{"ts":"{}","service":"support-bot","version":"v1","unit":"u1","values":{{"outputs":1}}}}"#,
        ripcord_server::clock::wall_now().to_rfc3339()
    );
    let sent = h
        .http
        .post(h.url("/v1/events"))
        .bearer_auth(&h.token)
        .header("content-type", "application/x-ndjson")
        .body(line)
        .send()
        .await?;
    assert_eq!(
        sent.status(),
        StatusCode::ACCEPTED,
        "{}",
        sent.text().await?
    );
    let change = tokio::time::timeout(Duration::from_secs(5), first.chunk()).await??;
    let change = String::from_utf8_lossy(&change.unwrap_or_default()).to_string();
    assert!(change.starts_with("event: change\ndata: "), "{change}");
    // Closing streams frees their slots.
    drop(streams);
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = get(&c, &h, "/ui/events", &vera.cookie).await?;
    assert_eq!(again.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn an_unacknowledged_incident_past_its_deadline_is_marked_overdue_in_words() -> Result {
    let at = ripcord_core::Time(ripcord_server::clock::wall_now().0 / 1000 * 1000);
    let clock = ripcord_server::clock::Clock::manual(at);
    let h = crate::support::start_with(|c| c.clock = clock.clone()).await?;
    h.release_at_30().await?;
    let declare =
        json!({"service": "support-bot", "kind": "real", "severity": "critical", "title": "loops"});
    let (status, inc) = h.post("/v1/incidents", &declare).await?;
    assert_eq!(status, 201, "{inc}");
    let id = inc["id"].as_str().unwrap_or_default().to_string();
    let c = browser()?;
    let otto = log_in(&h, &c, &token(&h, "otto", "operator").await?).await?;
    let page = |c: reqwest::Client, cookie: String, url: String| async move {
        c.get(url).header(COOKIE, cookie).send().await?.text().await
    };
    let url = h.url(&format!("/ui/incidents/{id}"));
    let before = page(c.clone(), otto.cookie.clone(), url.clone()).await?;
    assert!(before.contains("data-ack=\"no\""), "{before}");
    assert!(
        before.contains("due by <time>"),
        "the deadline is shown: {before}"
    );
    assert!(!before.contains("overdue"), "{before}");
    // The example policy gives a critical incident 5 minutes.
    clock.advance(ripcord_core::Dur(6 * 60 * 1000));
    let after = page(c.clone(), otto.cookie.clone(), url.clone()).await?;
    assert!(after.contains("✕ overdue</span>"), "{after}");

    let ack = c
        .post(h.url(&format!("/ui/incidents/{id}/acknowledge")))
        .header(COOKIE, &otto.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encode(&[("csrf", otto.csrf.as_str()), ("note", "on it")]))
        .send()
        .await?;
    assert_eq!(ack.status(), StatusCode::SEE_OTHER);
    let acked = page(c, otto.cookie.clone(), url).await?;
    assert!(acked.contains("data-ack=\"yes\""), "{acked}");
    assert!(acked.contains("by otto"), "{acked}");
    assert!(!acked.contains("overdue"), "{acked}");
    Ok(())
}

/// A drill runs to its end on the server's clock; the dashboard lists it
/// with its verdict and shows its scorecard exactly as the API scored it.
/// (The server has no notification channels, so the example's pages fail
/// to queue: whatever the verdict, the page must say the API's.)
#[tokio::test]
async fn a_drill_and_its_scorecard_are_on_the_dashboard() -> Result {
    let clock = ripcord_server::clock::Clock::manual(ripcord_core::Time(1_796_634_000_000));
    let manual = clock.clone();
    let h = crate::support::start_with(move |c| c.clock = manual).await?;
    let file = std::fs::read_to_string(
        crate::support::repo_root().join("examples/drills/moderation-spike.yaml"),
    )?
    .replace("baseline: v12", "baseline: v1")
    .replace("candidate: v13", "candidate: v2");
    let r = h
        .http
        .post(h.url("/v1/drills"))
        .bearer_auth(&h.token)
        .body(file)
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c = browser()?;
    let admin = log_in(&h, &c, &h.token).await?;
    let running = get(&c, &h, "/ui/drills", &admin.cookie)
        .await?
        .text()
        .await?;
    assert!(
        running.contains("data-drill=\"drill-support-bot-1\" data-state=\"running\""),
        "{running}"
    );
    let app = &h.server.app;
    let mut drill = Value::Null;
    for _ in 0..2000 {
        clock.advance(ripcord_core::Dur(2000));
        app.hub.tick_all().await;
        app.hub.run_timers().await;
        app.drills.run(&app.hub).await;
        drill = h.get_json("/v1/drills/drill-support-bot-1").await?;
        if drill["state"] != "running" {
            break;
        }
    }
    let state = drill["state"].as_str().unwrap_or_default();
    assert!(state == "passed" || state == "failed", "{drill}");
    let list = get(&c, &h, "/ui/drills", &admin.cookie)
        .await?
        .text()
        .await?;
    assert!(
        list.contains(&format!(
            "data-drill=\"drill-support-bot-1\" data-state=\"{state}\""
        )),
        "{list}"
    );
    let page = get(&c, &h, "/ui/drills/drill-support-bot-1", &admin.cookie)
        .await?
        .text()
        .await?;
    let lines = drill["scorecard"].as_array().cloned().unwrap_or_default();
    assert!(lines.len() >= 8, "{drill}");
    for l in &lines {
        let pass = if l["pass"] == true { "yes" } else { "no" };
        let name = l["name"].as_str().unwrap_or_default();
        let row = format!("data-line=\"{name}\" data-pass=\"{pass}\"");
        assert!(page.contains(&row), "{row}: {page}");
    }
    assert!(
        page.contains("href=\"/ui/incidents/inc-support-bot-1\""),
        "{page}"
    );
    Ok(())
}
