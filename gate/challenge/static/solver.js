/* gate challenge page: runs the proof-of-work search in Web Workers (worker.js), shows progress, and posts the
 * answer with the page's own <form>, so the browser follows the server's redirect and stores its cookie itself.
 *
 * Reads its input from <script type="application/json" id="gate-challenge">:
 *   {challenge, difficulty, workerUrl, verifyUrl, lang, strings: {progress, done, error}}
 * One worker per core (navigator.hardwareConcurrency, 1 to 16); worker i tries the nonces i, i + n, i + 2n, ...
 * Without Worker support (or when the workers fail to start) the same search runs here, in slices between
 * setTimeout calls. Progress is hashes done against the 2^difficulty expected, shown capped at 99 % until found.
 * Speed (hashes/s, in total and per worker) goes to the console and to the hidden #gate-stats element.
 */
(function () {
  "use strict";

  var dataElement = document.getElementById("gate-challenge");
  var form = document.getElementById("gate-form");
  if (!dataElement || !form) return;
  var data = JSON.parse(dataElement.textContent);
  var strings = data.strings;

  var work = document.getElementById("gate-work");
  var bar = document.getElementById("gate-progress");
  var shown = document.getElementById("gate-progress-text"); // the visible line under the bar (aria-hidden)
  var status = document.getElementById("gate-status"); // the polite live region (visually hidden): updated rarely
  var stats = document.getElementById("gate-stats");
  var spinner = document.getElementById("gate-spinner");

  var now = function () {
    return window.performance && performance.now ? performance.now() : Date.now();
  };
  var formatPercent = (function () {
    try {
      var format = new Intl.NumberFormat(data.lang, { style: "percent", maximumFractionDigits: 0 });
      return function (percent) {
        return format.format(percent / 100);
      };
    } catch (error) {
      return function (percent) {
        return percent + "%";
      };
    }
  })();

  var expected = Math.pow(2, data.difficulty);
  var started = now();
  var workers = [];
  var counts = []; // hashes done so far, per worker (or [total] on the main thread)
  var finished = false;
  var announcedQuarter = -1;
  var drawPending = false;

  function totalHashes() {
    var total = 0;
    for (var i = 0; i < counts.length; i++) total += counts[i];
    return total;
  }

  function progressText(percent) {
    return strings.progress.replace("{percent}", formatPercent(percent));
  }

  /* Shows text under the bar, and has screen readers announce it too when `announce` is set. */
  function show(text, announce) {
    shown.textContent = text;
    if (announce && status.textContent !== text) status.textContent = text;
  }

  /* The bar and the line under it follow every update (once per frame at most); the live region speaks only
   * at 0, 25, 50 and 75 %, so a screen reader is not flooded. */
  function draw() {
    drawPending = false;
    if (finished) return;
    var percent = Math.min(99, Math.floor((totalHashes() * 100) / expected));
    bar.value = percent;
    bar.setAttribute("aria-valuetext", formatPercent(percent));
    show(progressText(percent), false);
    var quarter = Math.floor(percent / 25);
    if (quarter > announcedQuarter) {
      announcedQuarter = quarter;
      status.textContent = progressText(quarter * 25);
    }
  }

  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    if (window.requestAnimationFrame && !document.hidden) window.requestAnimationFrame(draw);
    else setTimeout(draw, 100);
  }

  function report(hashes, elapsed, count) {
    var rate = elapsed > 0 ? Math.round((hashes * 1000) / elapsed) : 0;
    var perWorker = Math.round(rate / count);
    if (stats) {
      stats.setAttribute("data-hashes", String(hashes));
      stats.setAttribute("data-elapsed-ms", String(elapsed));
      stats.setAttribute("data-hashes-per-second", String(rate));
      stats.setAttribute("data-workers", String(count));
      stats.setAttribute("data-hashes-per-second-per-worker", String(perWorker));
      stats.textContent = hashes + " hashes in " + elapsed + " ms: " + rate + " hashes/s, " + count +
        (workers.length ? " workers, " + perWorker + " hashes/s each" : " main-thread search");
    }
    if (window.console && console.info) console.info("gate challenge: " + (stats ? stats.textContent : rate + " hashes/s"));
  }

  function stopWorkers() {
    for (var i = 0; i < workers.length; i++) workers[i].terminate();
  }

  function solved(nonce) {
    if (finished) return;
    finished = true;
    stopWorkers();
    var elapsed = Math.max(0, Math.round(now() - started));
    report(totalHashes(), elapsed, Math.max(workers.length, 1));
    bar.value = 100;
    bar.setAttribute("aria-valuetext", formatPercent(100));
    show(strings.done, true);
    form.elements.challenge.value = data.challenge;
    form.elements.nonce.value = String(nonce);
    form.elements.elapsed_ms.value = String(elapsed);
    form.submit();
  }

  function failed(error) {
    if (finished) return;
    finished = true;
    stopWorkers();
    work.classList.add("failed");
    if (spinner) spinner.hidden = true;
    show(strings.error, true);
    if (window.console && console.error) console.error("gate challenge:", error);
  }

  /* The fallback: the same search on this thread, in slices of about 50 ms so the page stays responsive. */
  function searchHere() {
    workers = [];
    counts = [0];
    var run = function () {
      var search = new window.GateWork.Search(data.challenge, data.difficulty, 0, 1);
      var slice = 20000;
      var step = function () {
        if (finished) return;
        var begun = now();
        try {
          if (search.run(slice)) return solved(search.found);
        } catch (error) {
          return failed(error);
        }
        counts[0] = search.hashes;
        var took = now() - begun;
        if (took < 25) slice *= 2;
        else if (took > 100 && slice > 1000) slice = Math.floor(slice / 2);
        scheduleDraw();
        setTimeout(step, 0);
      };
      step();
    };
    if (window.GateWork) return run();
    var script = document.createElement("script");
    script.src = data.workerUrl; // the worker's file only defines GateWork outside a worker
    script.onload = run;
    script.onerror = function () {
      failed(new Error("could not load " + data.workerUrl));
    };
    document.head.appendChild(script);
  }

  function startWorkers() {
    var count = Math.min(16, Math.max(1, navigator.hardwareConcurrency || 2));
    var alive = count;
    var onError = function (event) {
      if (event && event.preventDefault) event.preventDefault();
      alive--;
      // A worker that cannot start (blocked, failed to load) leaves its share of nonces untried: when none is
      // left, search on the main thread instead.
      if (alive === 0 && !finished) {
        stopWorkers();
        searchHere();
      }
    };
    try {
      for (var i = 0; i < count; i++) {
        var worker = new Worker(data.workerUrl);
        worker.onmessage = (function (index) {
          return function (event) {
            var message = event.data;
            counts[index] = message.hashes;
            if (message.type === "found") solved(message.nonce);
            else scheduleDraw();
          };
        })(i);
        worker.onerror = onError;
        counts.push(0);
        workers.push(worker);
        worker.postMessage({ token: data.challenge, difficulty: data.difficulty, start: i, step: count });
      }
    } catch (error) {
      stopWorkers();
      searchHere();
    }
  }

  // Restored from the back/forward cache after the answer was sent: that challenge is spent, so load afresh.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && finished) window.location.reload();
  });

  if (data.verifyUrl) form.setAttribute("action", data.verifyUrl);
  work.hidden = false;
  if (spinner) spinner.hidden = false;
  draw();
  if (typeof Worker === "function" || typeof Worker === "object") startWorkers();
  else searchHere();
})();
