// Person sign-in on the dashboard.
// 1. While the person has not answered the link, ask the server every two seconds (a POST:
//    completing the sign-in changes the session) and go on once they confirmed. Without
//    script, the Continue button does the same.
// 2. Or, when the person sits here: their passkey (WebAuthn) proves it at once. Options come
//    from a POST; binary fields travel as base64url.
(function () {
  "use strict";

  function form(fields) {
    return Object.keys(fields).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(fields[k]);
    }).join("&");
  }

  function post(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
      body: form(fields)
    });
  }

  var poll = document.getElementById("person-poll");
  if (poll) {
    var csrf = poll.querySelector("input[name=csrf]").value;
    var tick = function () {
      post(poll.action, {csrf: csrf}).then(function (r) {
        if (r.status === 202) { setTimeout(tick, 2000); return; }
        window.location.assign(r.ok ? poll.action.replace(/\/person\/poll$/, "/") : window.location.href);
      }).catch(function () { setTimeout(tick, 4000); });
    };
    setTimeout(tick, 2000);
  }

  function toBuf(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function toB64u(buf) {
    if (!buf) { return null; }
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  var button = document.getElementById("person-passkey");
  var ask = document.getElementById("person-form");
  if (!button || !ask || !window.PublicKeyCredential) { return; }
  button.hidden = false;
  var error = document.getElementById("passkey-error");
  function fail(text) { error.textContent = text; error.hidden = false; }

  button.addEventListener("click", async function () {
    error.hidden = true;
    var csrf = ask.querySelector("input[name=csrf]").value;
    var person = ask.querySelector("[name=person]").value;
    var base = ask.action.replace(/\/person\/signin$/, "/person/passkey/");
    var r = await post(base + "options", {csrf: csrf, person: person});
    var data = await r.json().catch(function () { return {error: "unexpected answer"}; });
    if (r.status !== 200) { fail(data.error || "Cannot use a passkey now."); return; }
    var o = JSON.parse(data.options);
    var publicKey = Object.assign({}, o, {
      challenge: toBuf(o.challenge),
      allowCredentials: (o.allowCredentials || []).map(function (c) {
        return Object.assign({}, c, {id: toBuf(c.id)});
      })
    });
    var cred;
    try {
      cred = await navigator.credentials.get({publicKey: publicKey});
    } catch (e) {
      fail("The passkey was not used: " + e.name + ".");
      return;
    }
    var assertion = {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64u(cred.response.authenticatorData),
        clientDataJSON: toB64u(cred.response.clientDataJSON),
        signature: toB64u(cred.response.signature),
        userHandle: toB64u(cred.response.userHandle)
      },
      clientExtensionResults: {}
    };
    var done = await post(base + "finish", {csrf: csrf, nonce: data.nonce, assertion: JSON.stringify(assertion)});
    var answer = await done.json().catch(function () { return {error: "unexpected answer"}; });
    if (done.status !== 200) { fail(answer.error || "Not accepted."); return; }
    window.location.assign(ask.action.replace(/\/person\/signin$/, "/"));
  });
}());
