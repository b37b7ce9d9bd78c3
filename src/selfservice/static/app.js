// The "External Tool Access" page: generate, copy, rotate, revoke. Served from
// keygate itself (/.keygate/static/app.js) under a strict CSP; it writes
// every value with textContent, never as HTML.
"use strict";
(function () {
  var API = "/.keygate/api/keys";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  function $(id) { return document.getElementById(id); }

  // A rotation that could not reach every keygate instance: its warning
  // stays in the status region, marked, until Done or the next key, since
  // Copy and the like say something there too.
  var warning = "";
  function say(text) {
    var status = $("status");
    status.textContent = warning ? (text ? text + " " : "") + warning : text;
    status.className = warning ? "warning" : "";
  }

  // "2026-11-27T04:05:00Z" -> "2026-11-27 04:05 UTC", as the server writes it.
  function when(t) { return t ? t.replace("T", " ").slice(0, 16) + " UTC" : "never"; }

  function call(method, url, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (resp) {
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var e = new Error(data.error || ("the server answered " + resp.status));
          // A revocation the store made but not every instance heard of.
          e.revoked = data.revoked;
          throw e;
        }
        return data;
      });
    });
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function render(keys) {
    var body = $("keys").tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    keys.forEach(function (k) {
      var row = document.createElement("tr");
      row.setAttribute("data-key-id", k.id);
      var label = k.label || "(no label)";
      cell(row, label);
      cell(row, when(k.created_at));
      cell(row, when(k.expires_at));
      cell(row, when(k.last_used_at));
      var td = document.createElement("td");
      if (k.rotated_to) {
        var replaced = document.createElement("span");
        replaced.className = "replaced";
        replaced.textContent = "Replaced";
        td.appendChild(replaced);
      } else {
        td.appendChild(button("rotate", "Rotate", label));
      }
      td.appendChild(document.createTextNode(" "));
      td.appendChild(button("revoke", "Revoke", label));
      row.appendChild(td);
      body.appendChild(row);
    });
    $("no-keys").hidden = keys.length > 0;
    banner(keys);
  }

  function button(cls, text, label) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = cls;
    b.textContent = text;
    b.setAttribute("aria-label", text + " " + label);
    return b;
  }

  // The keys that expire within the first warn_before offset, not rotated yet.
  function banner(keys) {
    var section = $("expiring");
    var list = $("expiring-keys");
    var windowSecs = Number(section.getAttribute("data-window"));
    var soon = Date.now() + windowSecs * 1000;
    while (list.firstChild) list.removeChild(list.firstChild);
    keys.forEach(function (k) {
      if (!windowSecs || k.rotated_to || !k.expires_at || Date.parse(k.expires_at) > soon) return;
      var label = k.label || "(no label)";
      var li = document.createElement("li");
      li.setAttribute("data-key-id", k.id);
      var strong = document.createElement("strong");
      strong.textContent = label;
      li.appendChild(strong);
      li.appendChild(document.createTextNode(" expires " + when(k.expires_at) + ". "));
      li.appendChild(button("rotate", "Rotate", label));
      list.appendChild(li);
    });
    section.hidden = list.children.length === 0;
  }

  function showNewKey(key) {
    $("new-key").textContent = key;
    $("copy").textContent = "Copy to Clipboard";
    $("new-key-panel").hidden = false;
    $("copy").focus();
  }

  function refresh() {
    return call("GET", API).then(function (data) { render(data.keys); });
  }

  $("generate").addEventListener("submit", function (event) {
    event.preventDefault();
    var button = $("generate-button");
    button.disabled = true;
    warning = "";
    say("");
    call("POST", API, { label: $("label").value, ttl: $("lifetime").value })
      .then(function (created) {
        showNewKey(created.key);
        say("New API key generated. Copy it now: it is shown only once.");
        return refresh();
      })
      .catch(function (e) { say("Could not generate a key: " + e.message); })
      .then(function () { button.disabled = false; });
  });

  $("copy").addEventListener("click", function () {
    navigator.clipboard.writeText($("new-key").textContent).then(
      function () { $("copy").textContent = "Copied!"; say("Copied to the clipboard."); },
      function () { say("Copying failed: select the key and copy it yourself."); }
    );
  });

  $("done").addEventListener("click", function () {
    // After Done the key is gone from the page for good.
    $("new-key").textContent = "";
    $("new-key-panel").hidden = true;
    $("label").value = "";
    warning = "";
    say("");
    $("label").focus();
  });

  // Rotate, in the table or the banner: the successor shown once, the old
  // key working until its grace period ends, or, when not every instance
  // could be told (old_key_stopped_everywhere false), the answer's warning.
  function rotate(event) {
    var button = event.target.closest("button.rotate");
    if (!button) return false;
    var item = button.closest("[data-key-id]");
    var id = item.getAttribute("data-key-id");
    var label = button.getAttribute("aria-label").replace(/^Rotate /, "");
    button.disabled = true;
    call("POST", API + "/" + encodeURIComponent(id) + "/rotate", {})
      .then(function (rotated) {
        showNewKey(rotated.key);
        var done = "Key " + label + " rotated. Copy the new key now: it is shown only once.";
        if (rotated.old_key_stopped_everywhere === false) {
          warning = "Warning: " + (rotated.warning ||
            "not every keygate instance could be told to stop the old key; it may keep working on some of them after " +
            when(rotated.old_key_expires_at) + ".");
          say(done);
        } else {
          warning = "";
          say(done + " The old key keeps working until " + when(rotated.old_key_expires_at) + ".");
        }
        return refresh();
      })
      .catch(function (e) { button.disabled = false; say("Could not rotate " + label + ": " + e.message); });
    return true;
  }

  $("expiring").addEventListener("click", rotate);

  $("keys").addEventListener("click", function (event) {
    if (rotate(event)) return;
    var button = event.target.closest("button.revoke");
    if (!button) return;
    var row = button.closest("tr");
    var id = row.getAttribute("data-key-id");
    var label = row.cells[0].textContent;
    button.disabled = true;
    function gone(text) {
      row.parentNode.removeChild(row);
      $("no-keys").hidden = $("keys").tBodies[0].rows.length > 0;
      say(text);
      $("label").focus();
      return refresh();
    }
    call("DELETE", API + "/" + encodeURIComponent(id))
      .then(function () { return gone("Key " + label + " revoked."); })
      .catch(function (e) {
        // Revoked, but not every keygate instance heard of it (503 with
        // `revoked`): the key is gone, and asking again would find nothing.
        if (typeof e.revoked === "number") {
          return gone("Key " + label + " revoked. Warning: not every keygate instance could be told yet; " +
            "one that has it cached may accept it for a few minutes (keygate keeps telling them).");
        }
        button.disabled = false;
        say("Could not revoke " + label + ": " + e.message);
      });
  });
})();
