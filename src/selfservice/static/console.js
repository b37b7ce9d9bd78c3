// The admin console, "External Tool Settings": settings, every key, the
// audit log. Served from keygate itself (/.keygate/static/console.js) under
// a strict CSP; it writes every value with textContent, never as HTML.
"use strict";
(function () {
  var API = "/.keygate/api/admin/";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  function $(id) { return document.getElementById(id); }
  function when(t) { return t ? t.replace("T", " ").slice(0, 16) + " UTC" : "never"; }

  // The grid's status region. A rotation that could not reach every keygate
  // instance leaves its warning there, marked, until Done or the next
  // rotation, since Copy and the like say something there too.
  var warning = "";
  function say(text) {
    var status = $("grid-status");
    status.textContent = warning ? (text ? text + " " : "") + warning : text;
    status.className = warning ? "warning" : "";
  }

  // fetch with the CSRF token; rejects with the server's own message.
  function call(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(API + path, opts).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var e = new Error(data.error || ("the server answered " + resp.status));
          e.problems = data.problems || [];
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
    return td;
  }

  // A row's button, named for screen readers.
  function button(className, text, name) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = className;
    b.textContent = text;
    b.setAttribute("aria-label", name);
    return b;
  }

  // --- Settings ---------------------------------------------------------
  var FIELDS = ["ttl_choices", "default_ttl", "max_ttl"];

  function clearErrors() {
    FIELDS.forEach(function (f) {
      $(f + "-error").textContent = "";
      $(f).removeAttribute("aria-invalid");
    });
  }

  $("settings").addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    $("settings-status").textContent = "";
    var settings = {
      self_service: $("self_service").checked,
      ttl_choices: $("ttl_choices").value.split(",").map(function (c) { return c.trim(); })
        .filter(function (c) { return c !== ""; }),
      default_ttl: $("default_ttl").value.trim(),
      max_ttl: $("max_ttl").value.trim()
    };
    call("PUT", "settings", settings).then(function () {
      $("settings-status").textContent = "Settings saved.";
      newestAudit();
    }, function (e) {
      var first = null;
      e.problems.forEach(function (p) {
        var name = p.field.replace(/\[\d+\]$/, "");
        if (FIELDS.indexOf(name) < 0) return;
        var err = $(name + "-error");
        err.textContent = (err.textContent ? err.textContent + " " : "") + p.field + ": " + p.message;
        $(name).setAttribute("aria-invalid", "true");
        first = first || $(name);
      });
      $("settings-status").textContent = "Nothing was saved: " + e.message;
      if (first) first.focus();
    });
  });

  // --- Keys grid --------------------------------------------------------
  var cursors = [null]; // the cursor of each page seen; the last is the current
  var next = null;

  // The filter as typed in the form.
  function typed() {
    var f = {};
    if ($("f-user").value.trim()) f.user = $("f-user").value.trim();
    if ($("f-label").value.trim()) f.label = $("f-label").value.trim();
    if ($("f-expires").value) f.expires_before = $("f-expires").value + "T00:00:00Z";
    return f;
  }

  // The listing the grid shows, as last applied: pages, cursors and "every
  // key that matches" follow it, not what is typed but not yet applied.
  var shown = { filter: {}, sort: "created:desc", limit: "100" };

  function filter() { return shown.filter; }

  function describe(f) {
    var parts = [];
    if (f.user) parts.push("user " + f.user);
    if (f.label) parts.push("label \u201c" + f.label + "\u201d");
    if (f.expires_before) parts.push("expiring before " + when(f.expires_before));
    return parts.join(", ");
  }

  function query(cursor) {
    var sort = shown.sort.split(":");
    var q = new URLSearchParams(shown.filter);
    q.set("sort", sort[0]);
    q.set("order", sort[1]);
    q.set("limit", shown.limit);
    if (cursor) q.set("cursor", cursor);
    return q.toString();
  }

  function picked() {
    return Array.prototype.slice.call(document.querySelectorAll("#grid tbody input.pick:checked"));
  }

  function updateDelete() {
    var n = picked().length;
    $("delete").disabled = n === 0;
    $("delete").textContent = n ? "Delete " + n + (n === 1 ? " key" : " keys") : "Delete";
  }

  function render(keys) {
    var body = $("grid").tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    keys.forEach(function (k) {
      var row = document.createElement("tr");
      row.setAttribute("data-key-id", k.id);
      var label = k.label || "(no label)";
      var box = document.createElement("input");
      box.type = "checkbox";
      box.className = "pick";
      box.value = k.id;
      box.setAttribute("aria-label", "Select key " + label + " of " + k.user);
      cell(row, "").appendChild(box);
      cell(row, k.user);
      cell(row, label);
      cell(row, k.source || "");
      cell(row, k.scope);
      cell(row, when(k.created_at));
      cell(row, when(k.expires_at));
      cell(row, when(k.last_used_at));
      var idCell = cell(row, "");
      var code = document.createElement("code");
      code.textContent = k.id;
      idCell.appendChild(code);
      idCell.appendChild(document.createTextNode(" "));
      idCell.appendChild(button("copy-id", "Copy", "Copy the id of key " + label + " of " + k.user));
      // Rotate a live key; a rotated one names its successor.
      var rotation = cell(row, "");
      if (k.rotated_to) rotation.textContent = "replaced by " + k.rotated_to;
      else rotation.appendChild(button("rotate", "Rotate", "Rotate key " + label + " of " + k.user));
      body.appendChild(row);
    });
    $("no-match").hidden = keys.length > 0;
    $("select-page").checked = false;
    updateDelete();
  }

  // Empty pages looked past in place of the one asked for, at most.
  var LOOK_FURTHER = 10;

  function load(cursor, looked) {
    looked = looked || 0;
    return call("GET", "keys?" + query(cursor)).then(function (page) {
      next = page.next_cursor || null;
      // keygate looks through a bounded number of keys a page, so a filter
      // its index cannot answer (a label within a user's keys, expires
      // before in creation order) may answer an empty page that still has
      // a next one: look on in its place rather than say nothing matches.
      if (!page.keys.length && next && looked < LOOK_FURTHER) {
        cursors[cursors.length - 1] = next;
        return load(next, looked + 1);
      }
      render(page.keys);
      $("no-match").textContent = next
        ? "No key matches this filter among the keys looked through so far: Next page looks further."
        : "No key matches this filter.";
      $("next-page").disabled = !next;
      $("prev-page").disabled = cursors.length < 2;
      $("first-page").disabled = cursors.length < 2;
      $("page-number").textContent = "Page " + cursors.length;
    }, function (e) {
      // Rows of the listing before would read as this one's.
      render([]);
      $("no-match").hidden = true;
      next = null;
      $("next-page").disabled = true;
      say("Could not list keys: " + e.message);
    });
  }

  function reload() { return load(cursors[cursors.length - 1]); }

  $("filter").addEventListener("submit", function (event) {
    event.preventDefault();
    hideConfirm();
    say("");
    shown = { filter: typed(), sort: $("f-sort").value, limit: $("f-limit").value };
    // Screen readers announce the column the grid is sorted by.
    var sort = shown.sort.split(":");
    ["created", "expires"].forEach(function (c) {
      if (c === sort[0]) $("th-" + c).setAttribute("aria-sort", sort[1] === "asc" ? "ascending" : "descending");
      else $("th-" + c).removeAttribute("aria-sort");
    });
    cursors = [null];
    load(null);
  });
  $("next-page").addEventListener("click", function () { cursors.push(next); reload(); });
  $("prev-page").addEventListener("click", function () { cursors.pop(); reload(); });
  $("first-page").addEventListener("click", function () { cursors = [null]; reload(); });

  $("grid").addEventListener("change", function (event) {
    if (event.target.id === "select-page") {
      document.querySelectorAll("#grid tbody input.pick").forEach(function (b) {
        b.checked = event.target.checked;
      });
    }
    updateDelete();
  });

  $("grid").addEventListener("click", function (event) {
    if (rotate(event)) return;
    var button = event.target.closest("button.copy-id");
    if (!button) return;
    var id = button.closest("tr").getAttribute("data-key-id");
    navigator.clipboard.writeText(id).then(
      function () { say("Key id " + id + " copied."); },
      function () { say("Copying failed: select the id and copy it yourself."); }
    );
  });

  // --- Rotate: the successor shown once, the old key kept for its grace --
  // (or, when not every instance could be told, the answer's warning).
  function rotate(event) {
    var button = event.target.closest("button.rotate");
    if (!button) return false;
    var id = button.closest("tr").getAttribute("data-key-id");
    var what = button.getAttribute("aria-label").replace(/^Rotate /, "");
    button.disabled = true;
    call("POST", "keys/" + encodeURIComponent(id) + "/rotate", {}).then(function (rotated) {
      $("new-key").textContent = rotated.key;
      $("copy").textContent = "Copy to Clipboard";
      $("new-key-panel").hidden = false;
      $("copy").focus();
      var done = "Rotated " + what + ": the new key is " + rotated.id + ". Copy it now: it is shown only once.";
      if (rotated.old_key_stopped_everywhere === false) {
        warning = "Warning: " + (rotated.warning ||
          "not every keygate instance could be told to stop the old key; it may keep working on some of them after " +
          when(rotated.old_key_expires_at) + ".");
        say(done);
      } else {
        warning = "";
        say(done + " The old key keeps working until " + when(rotated.old_key_expires_at) + ".");
      }
      newestAudit();
      return reload();
    }, function (e) {
      button.disabled = false;
      say("Could not rotate " + what + ": " + e.message);
    });
    return true;
  }

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
    warning = "";
    say("");
    $("f-user").focus();
  });

  // The answer of a revocation: how many, and which instances acknowledged.
  function revoked(data, asked) {
    var text = "Revoked " + data.revoked + (data.revoked === 1 ? " key" : " keys");
    if (asked !== undefined && asked > data.revoked) {
      var gone = asked - data.revoked;
      text += "; " + gone + " of the " + asked + " selected " + (gone === 1 ? "was" : "were") +
        " already revoked or expired";
    }
    var fleet = data.instances || {};
    var ack = fleet.acknowledged || [];
    var missing = fleet.unacknowledged || [];
    text += ". Acknowledged by " + (ack.length ? ack.length + " instance" + (ack.length === 1 ? "" : "s") +
      " (" + ack.join(", ") + ")" : "no other instance") + ".";
    if (missing.length) {
      text += " Not answering, waited out their lease: " + missing.join(", ") + ".";
    }
    say(text);
    newestAudit();
    return reload();
  }

  // A refused revocation; or one the store made that not every instance
  // could be told about (503 with `revoked`): the keys are gone, say so.
  function failed(e) {
    if (typeof e.revoked !== "number") {
      say("Nothing was revoked: " + e.message);
      return;
    }
    say("Warning: " + e.message.charAt(0).toUpperCase() + e.message.slice(1) + ".");
    newestAudit();
    return reload();
  }

  $("delete").addEventListener("click", function () {
    var ids = picked().map(function (b) { return b.value; });
    if (!ids.length) return;
    $("delete").disabled = true;
    call("POST", "revoke", { ids: ids }).then(function (data) { return revoked(data, ids.length); }, failed)
      .then(updateDelete);
  });

  // --- Confirmations: every key that matches, every key ----------------
  var pending = null; // the body to send once confirmed

  function hideConfirm() {
    pending = null;
    $("confirm").hidden = true;
    $("confirm-type").hidden = true;
    $("confirm-count").value = "";
  }

  // A dry run first: the count the admin confirms.
  function confirmThen(body, text, typed) {
    var dry = Object.assign({ dry_run: true }, body);
    return call("POST", "revoke", dry).then(function (data) {
      var n = data.would_revoke;
      pending = { body: body, count: n, typed: typed };
      $("confirm-text").textContent = text(n);
      $("confirm-type").hidden = !typed || n === 0;
      $("confirm-count").value = "";
      $("confirm-delete").textContent = "Delete " + n + (n === 1 ? " key" : " keys");
      $("confirm-delete").disabled = n === 0 || typed;
      $("confirm").hidden = false;
      (typed && n > 0 ? $("confirm-count") : $("confirm-cancel")).focus();
    }, failed);
  }

  $("select-matching").addEventListener("click", function () {
    var f = filter();
    if (!Object.keys(f).length) {
      hideConfirm();
      say("Apply a filter (user, label or expires before) first; to revoke every key use Revoke all keys.");
      return;
    }
    confirmThen({ filter: f }, function (n) {
      return n === 0 ? "No key matches " + describe(f) + ": nothing to delete."
        : n + (n === 1 ? " key matches " : " keys match ") + describe(f) + ", on every page. Delete them all?";
    }, false);
  });

  $("revoke-all").addEventListener("click", function () {
    confirmThen({ all: true }, function (n) {
      return n === 0 ? "There are no keys to revoke."
        : "This revokes every API key of every user: " + n + " keys. Scripts using them stop working at once.";
    }, true);
  });

  // --- Leaked keys: pasted, looked up, revoked by possession ------------
  // Everything shaped as a key (`<prefix>_<id>_<secret>`), whatever the
  // text around it (`password_kg_…` too), each once; keygate decides which
  // are keys of this deployment.
  function keysIn(text) {
    var seen = {};
    return (text.match(/[A-Za-z0-9]+_[A-Za-z0-9]{12}_[A-Za-z0-9]{20,}/g) || []).filter(function (k) {
      if (seen[k]) return false;
      seen[k] = true;
      return true;
    });
  }

  // The console's JSON bodies are at most 16 KiB (about 200 keys), less
  // room for the rest of the body.
  var MAX_KEYS_BODY = 16384 - 64;

  function showLeaked(open) {
    $("leaked").hidden = !open;
    $("leaked-open").setAttribute("aria-expanded", String(open));
    // The secrets stay on the page no longer than needed.
    if (!open) $("leaked-text").value = "";
  }

  $("leaked-open").addEventListener("click", function () {
    hideConfirm();
    showLeaked(true);
    $("leaked-text").focus();
  });
  $("leaked-close").addEventListener("click", function () { hideConfirm(); showLeaked(false); $("leaked-open").focus(); });

  $("leaked").addEventListener("submit", function (event) {
    event.preventDefault();
    var found = keysIn($("leaked-text").value);
    if (!found.length) {
      hideConfirm();
      say("No API key found in the pasted text.");
      return;
    }
    var m = found.length + (found.length === 1 ? " key" : " keys") + " found in the pasted text";
    if (JSON.stringify({ keys: found }).length > MAX_KEYS_BODY) {
      hideConfirm();
      say("The pasted text holds " + m.replace(" found in the pasted text", "") + ", more than the console takes at once " +
        "(16 KiB, about 200 keys): paste them in parts, or use keygate keys revoke --leaked or POST /v1/revoke.");
      return;
    }
    // The count includes keys rotated from a pasted one: whoever holds a
    // leaked key may have rotated it.
    confirmThen({ keys: found }, function (n) {
      var them = n === 1 ? "it" : "them";
      return n === 0 ? "No live key of this deployment is among the " + m + ", or was rotated from one of them: nothing to revoke."
        : n + (n === 1 ? " live key" : " live keys") + " of this deployment: among the " + m +
          ", or rotated from one of them. Revoke " + them + "? Scripts using " + them + " stop working at once.";
    }, false);
  });

  $("confirm-count").addEventListener("input", function () {
    $("confirm-delete").disabled = !pending || $("confirm-count").value.trim() !== String(pending.count);
  });

  $("confirm-cancel").addEventListener("click", function () {
    hideConfirm();
    ($("leaked").hidden ? $("select-matching") : $("find-leaked")).focus();
  });

  $("confirm-delete").addEventListener("click", function () {
    if (!pending) return;
    var body = pending.body;
    hideConfirm();
    if (body.keys) showLeaked(false);
    call("POST", "revoke", body).then(function (data) { cursors = [null]; return revoked(data); }, failed);
  });

  // --- Audit log --------------------------------------------------------
  var auditPages = [null];

  function loadAudit() {
    var before = auditPages[auditPages.length - 1];
    return call("GET", "audit" + (before ? "?before=" + encodeURIComponent(before) : "")).then(function (page) {
      var body = $("audit").tBodies[0];
      while (body.firstChild) body.removeChild(body.firstChild);
      page.events.forEach(function (e) {
        var row = document.createElement("tr");
        [when(e.time), e.actor, e.action, e.target, String(e.count), e.source || "", e.client]
          .forEach(function (t) { cell(row, t); });
        body.appendChild(row);
      });
      $("audit-older").disabled = !page.before;
      $("audit-older").setAttribute("data-before", page.before || "");
      $("audit-newest").disabled = auditPages.length < 2;
    }, function (e) { say("Could not read the audit log: " + e.message); });
  }

  $("audit-older").addEventListener("click", function () {
    auditPages.push($("audit-older").getAttribute("data-before"));
    loadAudit();
  });
  $("audit-newest").addEventListener("click", function () { auditPages = [null]; loadAudit(); });

  // Changes made here show at the top of the audit log at once.
  function newestAudit() { auditPages = [null]; return loadAudit(); }

  load(null);
  loadAudit();
})();
