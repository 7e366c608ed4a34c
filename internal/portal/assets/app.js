// The hookrelay portal: one account's endpoints, deliveries and actions,
// through the HTTP API with the portal session's token as a bearer token.
// The token arrives in the URL fragment, is kept in sessionStorage (this tab
// only) and removed from the address bar at once. Nothing is put in the
// page as HTML: every value is set as text.
"use strict";

(function () {
  const store = window.sessionStorage;
  const $ = (id) => document.getElementById(id);
  let token = "";
  let account = "";
  let scopes = null; // null: not told, so every control shows and the API decides

  function readSession() {
    const frag = new URLSearchParams(window.location.hash.slice(1));
    if (frag.get("token")) {
      store.setItem("hookrelay.portal.token", frag.get("token"));
      store.setItem("hookrelay.portal.account", frag.get("account") || "");
      store.setItem("hookrelay.portal.scopes", frag.get("scopes") || "");
    }
    // The token leaves the address bar, the history and any bookmark.
    if (window.location.hash) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    token = store.getItem("hookrelay.portal.token") || "";
    account = store.getItem("hookrelay.portal.account") || "";
    const told = store.getItem("hookrelay.portal.scopes");
    scopes = told ? told.split(",") : null;
  }

  // can tells whether the session holds a scope: the page shows only the
  // controls it may use (the API checks each call all the same).
  function can(scope) {
    return scopes === null || scopes.includes(scope);
  }

  class HTTPError extends Error {
    constructor(status, body) {
      super((body && body.error) || "the request failed (" + status + ")");
      this.status = status;
    }
  }

  function expired() {
    token = "";
    store.removeItem("hookrelay.portal.token");
    store.removeItem("hookrelay.portal.account");
    store.removeItem("hookrelay.portal.scopes");
    for (const s of document.querySelectorAll("main > section")) s.hidden = true;
    $("tabs").hidden = true;
    $("account-line").hidden = true;
    setStatus("");
    $("expired").hidden = false;
    document.body.dataset.state = "expired";
  }

  async function api(method, path, body) {
    if (!token) { expired(); throw new HTTPError(401, null); }
    const init = { method, headers: { Authorization: "Bearer " + token }, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch("/v1/accounts/" + encodeURIComponent(account) + path, init);
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (e) { data = null; }
    }
    if (res.status === 401) { expired(); throw new HTTPError(401, data); }
    if (!res.ok) throw new HTTPError(res.status, data);
    return data;
  }

  function setStatus(msg, isError) {
    $("status").textContent = msg;
    $("status").className = isError ? "error" : "";
  }

  function fail(err) {
    if (err.status === 401) return;
    let msg = err.message;
    if (err.status === 403) msg = "This portal session may not do that. " + msg;
    if (err.status === 404) msg = "Not found. " + msg;
    setStatus(msg, true);
  }

  function cell(tr, label, text) {
    const td = document.createElement("td");
    td.dataset.label = label;
    if (text !== undefined) td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function button(parent, text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    parent.appendChild(b);
    return b;
  }

  // Endpoints.
  let endpointsCursor = "";

  async function loadEndpoints(more) {
    const q = more && endpointsCursor ? "?cursor=" + encodeURIComponent(endpointsCursor) : "";
    const data = await api("GET", "/endpoints" + q);
    const tbody = $("endpoints-table").tBodies[0];
    if (!more) tbody.replaceChildren();
    for (const ep of data.endpoints || []) tbody.appendChild(endpointRow(ep));
    endpointsCursor = data.next_cursor || "";
    $("endpoints-more").hidden = !endpointsCursor;
    $("endpoints-empty").hidden = tbody.rows.length > 0;
  }

  function endpointRow(ep) {
    const tr = document.createElement("tr");
    tr.dataset.endpoint = ep.id;
    cell(tr, "Endpoint", ep.id + (ep.description ? " (" + ep.description + ")" : ""));
    cell(tr, "URL", ep.url);
    cell(tr, "Events", (ep.events || []).join(", "));
    const st = cell(tr, "State", ep.enabled ? "enabled" : "disabled");
    st.className = ep.enabled ? "state-enabled" : "state-disabled";
    cell(tr, "Parked", ep.parked === undefined ? "unknown" : String(ep.parked)).className = "parked";
    const actions = document.createElement("div");
    actions.className = "row";
    cell(tr, "Actions").appendChild(actions);
    if (can("endpoints:write")) endpointWriteButtons(actions, ep);
    if (can("deliveries:read")) {
      button(actions, "Deliveries", "Show deliveries of endpoint " + ep.id, () => {
        $("f-endpoint").value = ep.id;
        show("deliveries");
        run(() => loadDeliveries(false));
      });
    }
    if (can("deliveries:write")) {
      button(actions, "Test or recover", "Send a test event to, or recover, endpoint " + ep.id, () => {
        $("test-endpoint").value = ep.id;
        $("recover-endpoint").value = ep.id;
        show("actions");
        $("test-endpoint").focus();
      });
    }
    return tr;
  }

  // endpointWriteButtons are the controls that need endpoints:write.
  function endpointWriteButtons(actions, ep) {
    button(actions, "Edit", "Edit endpoint " + ep.id, () => editEndpoint(ep));
    button(actions, ep.enabled ? "Disable" : "Enable", (ep.enabled ? "Disable" : "Enable") + " endpoint " + ep.id, () =>
      run(async () => { await api("PATCH", "/endpoints/" + encodeURIComponent(ep.id), { enabled: !ep.enabled }); await loadEndpoints(); },
        "Endpoint " + ep.id + (ep.enabled ? " disabled." : " enabled.")));
    button(actions, "Rotate secret", "Rotate the signing secret of endpoint " + ep.id, () =>
      run(async () => {
        const r = await api("POST", "/endpoints/" + encodeURIComponent(ep.id) + "/rotate-secret");
        showSecret(ep.id, r.secret, "New secret: shown once, store it now. The previous one keeps signing for a while.");
      }, "Secret of " + ep.id + " rotated; the previous one stays valid for a while."));
    button(actions, "Reveal secret", "Reveal the signing secret of endpoint " + ep.id, () =>
      run(async () => {
        const r = await api("GET", "/endpoints/" + encodeURIComponent(ep.id) + "/secret");
        showSecret(ep.id, r.secret, "The current secret. Revealing it is recorded.");
      }, "Secret of " + ep.id + " revealed."));
  }

  function showSecret(id, secret, note) {
    $("secret-note").textContent = note || "Shown once: store it now.";
    $("secret-endpoint").textContent = id;
    $("secret-value").value = secret || "";
    $("secret-box").hidden = !secret;
  }

  function editEndpoint(ep) {
    $("ep-id").value = ep.id;
    $("ep-url").value = ep.url;
    $("ep-events").value = (ep.events || []).join(", ");
    $("ep-description").value = ep.description || "";
    $("endpoint-form-title").textContent = "Edit endpoint " + ep.id;
    $("ep-save").textContent = "Save endpoint";
    $("ep-cancel").hidden = false;
    $("ep-url").focus();
  }

  function resetEndpointForm() {
    $("endpoint-form").reset();
    $("ep-id").value = "";
    $("ep-events").value = "*";
    $("endpoint-form-title").textContent = "Add an endpoint";
    $("ep-save").textContent = "Add endpoint";
    $("ep-cancel").hidden = true;
  }

  async function saveEndpoint() {
    const id = $("ep-id").value;
    const events = $("ep-events").value.split(",").map((s) => s.trim()).filter(Boolean);
    const body = { url: $("ep-url").value.trim(), events, description: $("ep-description").value };
    if (id) {
      await api("PATCH", "/endpoints/" + encodeURIComponent(id), body);
      showSecret("", "");
    } else {
      const r = await api("POST", "/endpoints", body);
      showSecret(r.id, r.secret);
    }
    resetEndpointForm();
    await loadEndpoints();
  }

  // Deliveries.
  let deliveriesCursor = "";

  function isoOf(input) {
    return input.value ? new Date(input.value).toISOString() : "";
  }

  async function loadDeliveries(more) {
    const q = new URLSearchParams();
    const set = (k, v) => { if (v) q.set(k, v); };
    set("endpoint_id", $("f-endpoint").value.trim());
    set("status", $("f-status").value);
    set("event_name", $("f-event").value);
    set("since", isoOf($("f-since")));
    set("until", isoOf($("f-until")));
    if (more) set("cursor", deliveriesCursor);
    const data = await api("GET", "/deliveries" + (q.toString() ? "?" + q : ""));
    const tbody = $("deliveries-table").tBodies[0];
    if (!more) tbody.replaceChildren();
    for (const d of data.deliveries || []) tbody.appendChild(deliveryRow(d));
    deliveriesCursor = data.next_cursor || "";
    $("deliveries-more").hidden = !deliveriesCursor;
  }

  function deliveryRow(d) {
    const id = d.delivery_id;
    const tr = document.createElement("tr");
    tr.dataset.delivery = id;
    cell(tr, "Delivery", id);
    cell(tr, "Endpoint", d.endpoint_id || "");
    cell(tr, "Event", d.event_name || "");
    cell(tr, "Status", d.status || "");
    cell(tr, "Attempts", String(d.attempts !== undefined ? d.attempts : ""));
    const actions = document.createElement("div");
    actions.className = "row";
    cell(tr, "Actions").appendChild(actions);
    button(actions, "Attempts", "Show attempts of delivery " + id, () => run(() => loadAttempts(id)));
    if (can("deliveries:write")) button(actions, "Resend", "Resend delivery " + id, () => run(() => resend(id), "Delivery " + id + " resent."));
    return tr;
  }

  async function loadAttempts(id) {
    const data = await api("GET", "/deliveries/" + encodeURIComponent(id) + "/attempts");
    $("attempts-of").textContent = id;
    const tbody = $("attempts-table").tBodies[0];
    tbody.replaceChildren();
    for (const a of data.attempts || []) {
      const tr = document.createElement("tr");
      tr.dataset.attempt = String(a.attempt);
      cell(tr, "Time", a.started_at || "");
      cell(tr, "Status code", String(a.status_code || a.error || a.outcome || ""));
      cell(tr, "Duration", a.duration_ms !== undefined ? a.duration_ms + " ms" : "");
      cell(tr, "Response", a.response_excerpt || "");
      tbody.appendChild(tr);
    }
    $("attempts").hidden = false;
    $("attempts-title").focus();
  }

  // Actions.
  function resend(id) {
    return api("POST", "/deliveries/" + encodeURIComponent(id) + "/resend").then(showResult);
  }

  // watch follows one delivery in the log until it ends (or a minute
  // passes), saying each status it sees in the watch line.
  async function watch(id) {
    const line = $("watch");
    const ended = ["delivered", "failed", "canceled"];
    for (let i = 0; i < 60; i++) {
      let status = "not in the log yet";
      try {
        status = (await api("GET", "/deliveries/" + encodeURIComponent(id))).status;
      } catch (err) {
        if (err.status !== 404) { fail(err); return; }
      }
      line.textContent = "Delivery " + id + ": " + status;
      line.dataset.status = status;
      if (ended.includes(status)) return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function sendTest() {
    const r = await api("POST", "/endpoints/" + encodeURIComponent($("test-endpoint").value.trim()) + "/test", { event_name: $("test-event").value });
    showResult(r);
    watch(r.delivery_id);
  }

  function recover() {
    const body = { since: isoOf($("recover-since")) };
    if ($("recover-until").value) body.until = isoOf($("recover-until"));
    return api("POST", "/endpoints/" + encodeURIComponent($("recover-endpoint").value.trim()) + "/recover", body).then(showResult);
  }

  function showResult(r) {
    $("action-result").textContent = r ? JSON.stringify(r, null, 2) : "Done.";
  }

  // run runs one action, reporting its outcome in the status line.
  async function run(fn, done) {
    setStatus("Working…");
    try {
      await fn();
      setStatus(done || "");
    } catch (err) {
      fail(err);
    }
  }

  function show(view) {
    for (const b of $("tabs").querySelectorAll("button")) {
      if (b.dataset.view === view) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    }
    for (const v of ["endpoints", "deliveries", "actions"]) $("view-" + v).hidden = v !== view;
  }

  function onSubmit(id, fn, done) {
    $(id).addEventListener("submit", (e) => {
      e.preventDefault();
      run(fn, done);
    });
  }

  // applyScopes hides the views and forms the session may not use.
  function applyScopes() {
    const tab = (view) => $("tabs").querySelector('button[data-view="' + view + '"]');
    tab("endpoints").hidden = !can("endpoints:read");
    tab("deliveries").hidden = !can("deliveries:read");
    tab("actions").hidden = !can("deliveries:write");
    $("endpoint-form").hidden = !can("endpoints:write");
  }

  function wire() {
    for (const b of $("tabs").querySelectorAll("button")) {
      b.addEventListener("click", () => {
        show(b.dataset.view);
        if (b.dataset.view === "deliveries") run(() => loadDeliveries(false));
        if (b.dataset.view === "endpoints") run(() => loadEndpoints(false));
      });
    }
    onSubmit("endpoint-form", saveEndpoint, "Endpoint saved.");
    $("ep-cancel").addEventListener("click", resetEndpointForm);
    $("endpoints-more").addEventListener("click", () => run(() => loadEndpoints(true)));
    onSubmit("delivery-filters", () => loadDeliveries(false));
    $("deliveries-more").addEventListener("click", () => run(() => loadDeliveries(true)));
    onSubmit("resend-form", () => resend($("resend-id").value.trim()), "Delivery resent.");
    onSubmit("recover-form", recover, "Recovery started.");
    onSubmit("test-form", sendTest, "Test event sent.");
  }

  async function start() {
    // A new session URL opened in this tab (or frame) changes only the
    // fragment, which loads nothing: start again with its token.
    window.addEventListener("hashchange", () => {
      if (new URLSearchParams(window.location.hash.slice(1)).get("token")) window.location.reload();
    });
    readSession();
    wire();
    if (!token || !account) { expired(); return; }
    $("account-id").textContent = account;
    applyScopes();
    const first = can("endpoints:read") ? "endpoints" : can("deliveries:read") ? "deliveries" : "actions";
    try {
      if (first === "endpoints") await loadEndpoints(false);
      if (first === "deliveries") await loadDeliveries(false);
    } catch (err) {
      fail(err);
      if (err.status === 401) return;
    }
    $("account-line").hidden = false;
    $("tabs").hidden = false;
    show(first);
    document.body.dataset.state = "ready";
  }

  start();
})();
