// Person sign-in: while the person has not answered, ask the server every two seconds
// (a POST: completing the sign-in changes the session) and go on once they confirmed.
// Without script, the Continue button does the same.
(function () {
  "use strict";
  var form = document.getElementById("person-poll");
  if (!form) { return; }
  var csrf = form.querySelector("input[name=csrf]").value;
  function tick() {
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
      body: "csrf=" + encodeURIComponent(csrf)
    }).then(function (r) {
      if (r.status === 202) { setTimeout(tick, 2000); return; }
      window.location.assign(r.ok ? form.action.replace(/\/person\/poll$/, "/") : window.location.href);
    }).catch(function () { setTimeout(tick, 4000); });
  }
  setTimeout(tick, 2000);
}());
