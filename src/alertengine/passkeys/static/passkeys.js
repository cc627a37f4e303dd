// Passkey enrollment and approval: WebAuthn in the browser, verification on the server.
// Options come from a POST (GET never changes anything); binary fields travel as base64url.
(function () {
  "use strict";

  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function post(url, body) {
    var r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    var data = {};
    try { data = await r.json(); } catch (e) { data = { message: "Unexpected answer (" + r.status + ")." }; }
    return { status: r.status, data: data };
  }

  function show(form, status, ok, title, message) {
    var out = document.getElementById("result");
    out.hidden = false;
    out.setAttribute("data-status", String(status));
    out.setAttribute("data-problem", ok ? "" : (message.problem || ""));
    out.querySelector("h1").textContent = title;
    out.querySelector("h1").className = ok ? "ok" : "bad";
    out.querySelector("p").textContent = message.message || "";
    if (ok) form.hidden = true;
  }

  function descriptors(list) {
    return (list || []).map(function (c) { return Object.assign({}, c, { id: toBuf(c.id) }); });
  }

  async function enroll(form) {
    var token = form.querySelector("[name=token]").value, root = form.dataset.root || "";
    var opts = await post(root + "/passkeys/enroll/options", { token: token });
    if (opts.status !== 200) return show(form, opts.status, false, "Cannot enroll", opts.data);
    var o = opts.data;
    var publicKey = Object.assign({}, o, {
      challenge: toBuf(o.challenge),
      user: Object.assign({}, o.user, { id: toBuf(o.user.id) }),
      excludeCredentials: descriptors(o.excludeCredentials),
    });
    var cred;
    try {
      cred = await navigator.credentials.create({ publicKey: publicKey });
    } catch (e) {
      return show(form, 0, false, "No passkey was created", { problem: "browser", message: String(e && e.name || e) });
    }
    var r = cred.response;
    var body = {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64u(r.clientDataJSON),
        attestationObject: toB64u(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
    var done = await post(root + "/passkeys/enroll/finish", { token: token, credential: body });
    show(form, done.status, done.status === 200, done.status === 200 ? "Passkey enrolled" : "Enrollment refused", done.data);
  }

  async function approve(form) {
    var token = form.querySelector("[name=token]").value;
    var opts = await post(form.dataset.options, { token: token });
    var assertion = null;
    if (opts.status === 200) {
      var o = opts.data;
      try {
        var a = await navigator.credentials.get({
          publicKey: Object.assign({}, o, { challenge: toBuf(o.challenge), allowCredentials: descriptors(o.allowCredentials) }),
        });
        assertion = {
          id: a.id,
          rawId: toB64u(a.rawId),
          type: a.type,
          response: {
            authenticatorData: toB64u(a.response.authenticatorData),
            clientDataJSON: toB64u(a.response.clientDataJSON),
            signature: toB64u(a.response.signature),
            userHandle: a.response.userHandle ? toB64u(a.response.userHandle) : null,
          },
          clientExtensionResults: a.getClientExtensionResults ? a.getClientExtensionResults() : {},
        };
      } catch (e) {
        assertion = null; // no passkey from this device: the server refuses and ledgers it
      }
    }
    var r = await post(form.action, { token: token, assertion: assertion });
    var title = r.status === 200 ? "Approved" : (r.status === 202 ? "Approval recorded" : (r.data.message || "Refused"));
    // Not enrolled (or a bad link): the options said why, in words the person can act on.
    var detail = opts.status !== 200 && r.status >= 400 ? Object.assign({}, r.data, { message: opts.data.message || r.data.message }) : r.data;
    show(form, r.status, r.status === 200 || r.status === 202, title, detail);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var button = form.querySelector("button");
        if (button) button.disabled = true;
        var run = form.dataset.passkey === "enroll" ? enroll : approve;
        run(form).finally(function () { if (button) button.disabled = false; });
      });
    });
  });
})();
