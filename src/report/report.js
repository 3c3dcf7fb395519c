// callmood QA report: draws the selected call (timeline, detail, transcript)
// from the embedded data. Every string from the data is set as textContent,
// never as HTML: transcripts are untrusted.
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('callmood-data').textContent);
  var CALLS = DATA.calls;
  var BY_NAME = {};
  CALLS.forEach(function (c, i) { c.rank = i; BY_NAME[c.name] = c; });
  var SVGNS = 'http://www.w3.org/2000/svg';
  var CLASSES = ['neutral', 'happy', 'angry', 'sad', 'fearful'];
  var METRICS = {
    // chance: what a model that knows nothing gives (1 in 5 per class): an unsure
    // utterance sits near it, so 55 % "negative" is less than chance, not a warning.
    // A metric's title says where its chance lies (metricTitle), from `chance` itself.
    negative: { label: 'Negative', title: 'P(angry) + P(fearful) + P(sad)', why: '3 of 5 classes',
      lo: 0, hi: 1, chance: 0.6, f: function (e) { return e.angry + e.fearful + e.sad; } },
    angry: { label: 'Angry', title: 'P(angry)', lo: 0, hi: 1, chance: 0.2,
      f: function (e) { return e.angry; } },
    fearful: { label: 'Fearful', title: 'P(fearful)', lo: 0, hi: 1, chance: 0.2,
      f: function (e) { return e.fearful; } },
    sad: { label: 'Sad', title: 'P(sad)', lo: 0, hi: 1, chance: 0.2,
      f: function (e) { return e.sad; } },
    valence: { label: 'Valence', title: 'valence (−1 negative … +1 positive)', lo: -1, hi: 1,
      f: function (e) { return e.valence; } },
    arousal: { label: 'Arousal', title: 'arousal (−1 calm … +1 excited)', lo: -1, hi: 1,
      f: function (e) { return e.arousal; } }
  };
  function metricTitle(m) {
    if (m.chance === undefined) return m.title;
    return m.title + '; ' + Math.round(m.chance * 100) + ' % is chance' + (m.why ? ' (' + m.why + ')' : '');
  }
  var state = { call: null, metric: 'negative', sel: null };

  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function s(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    return e;
  }
  function title(node, text) { var t = s('title', {}); t.textContent = text; node.appendChild(t); return node; }
  function clock(ms, tenths) {
    var t = Math.max(0, ms) / 1000;
    var hrs = Math.floor(t / 3600), min = Math.floor(t / 60) % 60, sec = t % 60;
    var ss = tenths ? sec.toFixed(1) : String(Math.floor(sec));
    if (Number(ss) < 10) ss = '0' + ss;
    return (hrs ? hrs + ':' + (min < 10 ? '0' : '') + min : String(min)) + ':' + ss;
  }
  function pct(p) { return Math.round(p * 100) + '%'; }
  function cap(w) { return w.charAt(0).toUpperCase() + w.slice(1); }
  function signed(x) { return (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(2); }
  function roleLabel(r) { return r === 'caller' ? 'Caller' : r === 'agent' ? 'Agent' : 'Speaker'; }

  // ----- index -----
  var rows = Array.prototype.slice.call(document.querySelectorAll('table.index tr.row'));
  rows.forEach(function (tr) {
    if (tr.getAttribute('data-status') !== 'ok') return;
    var go = function (ev) {
      if (ev) ev.preventDefault();
      location.hash = 'call=' + encodeURIComponent(tr.getAttribute('data-name'));
    };
    tr.addEventListener('click', go);
    tr.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') go(ev); });
  });
  var filter = document.getElementById('filter');
  if (filter) {
    filter.addEventListener('input', function () {
      var q = filter.value.trim().toLowerCase();
      rows.forEach(function (tr) {
        tr.hidden = q !== '' && tr.textContent.toLowerCase().indexOf(q) < 0 &&
          tr.getAttribute('data-name').toLowerCase().indexOf(q) < 0;
      });
    });
  }

  // ----- call view -----
  var panel = document.getElementById('call');

  function show(name, scroll) {
    var c = BY_NAME[name];
    if (!c) return;
    state.call = c;
    state.sel = null;
    rows.forEach(function (tr) { tr.classList.toggle('selected', tr.getAttribute('data-name') === name); });
    panel.textContent = '';
    panel.setAttribute('data-name', c.name);
    panel.appendChild(callHead(c));
    panel.appendChild(stats(c));
    var grid = h('div', 'grid');
    var main = h('div', 'plot');
    var head = h('div', 'plot-head');
    head.appendChild(h('h3', '', 'Emotion over time'));
    var seg = h('div', 'seg');
    seg.setAttribute('role', 'group');
    Object.keys(METRICS).forEach(function (k) {
      var b = h('button', '', METRICS[k].label);
      b.type = 'button';
      b.title = metricTitle(METRICS[k]);
      b.setAttribute('data-metric', k);
      b.setAttribute('aria-pressed', String(k === state.metric));
      b.addEventListener('click', function () {
        state.metric = k;
        Array.prototype.forEach.call(seg.children, function (x) {
          x.setAttribute('aria-pressed', String(x.getAttribute('data-metric') === k));
        });
        draw();
      });
      seg.appendChild(b);
    });
    head.appendChild(seg);
    main.appendChild(head);
    var tl = h('div');
    tl.id = 'timeline';
    main.appendChild(tl);
    main.appendChild(legend(c));
    var detail = h('div', 'detail');
    detail.id = 'detail';
    main.appendChild(detail);
    grid.appendChild(main);
    var side = h('div', 'side');
    var th = h('h3', '', 'Transcript');
    th.appendChild(h('span', 'muted', c.utts.length + (c.utts.length === 1 ? ' utterance' : ' utterances')));
    side.appendChild(th);
    side.appendChild(transcript(c));
    grid.appendChild(side);
    panel.appendChild(grid);
    draw();
    if (c.worst) select(c.worst.id, false); else if (c.utts.length) select(c.utts[0].id, false);
    else showEmpty();
    if (scroll) panel.scrollIntoView({ behavior: 'auto', block: 'start' });
  }

  function callHead(c) {
    var head = h('div', 'call-head');
    var t = h('div', 'call-title');
    var badge = h('div', 'riskbadge ' + c.risk.level, Math.round(c.risk.score));
    badge.appendChild(h('small', '', 'risk'));
    var p = c.risk.parts;
    badge.title = 'alerts ' + p.alerts.toFixed(2) + ', peak emotion ' + p.emotion.toFixed(2) +
      ', interruptions ' + p.interruptions.toFixed(2) + ' (each 0–1)';
    t.appendChild(badge);
    var names = h('div');
    names.appendChild(h('h2', '', c.call_id || c.name));
    names.appendChild(h('div', 'sub', c.file + ' · calls/' + c.name + '.jsonl'));
    t.appendChild(names);
    head.appendChild(t);
    var nav = h('div', 'nav');
    var prev = h('button', '', '← Riskier');
    var next = h('button', '', 'Less risky →');
    prev.type = next.type = 'button';
    prev.disabled = c.rank === 0;
    next.disabled = c.rank === CALLS.length - 1;
    prev.addEventListener('click', function () { location.hash = 'call=' + encodeURIComponent(CALLS[c.rank - 1].name); });
    next.addEventListener('click', function () { location.hash = 'call=' + encodeURIComponent(CALLS[c.rank + 1].name); });
    nav.appendChild(prev);
    nav.appendChild(next);
    head.appendChild(nav);
    return head;
  }

  function stats(c) {
    var box = h('div', 'stats');
    function stat(value, label) {
      var d = h('div', 'stat');
      d.appendChild(h('b', '', value));
      d.appendChild(h('span', '', label));
      box.appendChild(d);
    }
    var role = function (r) { return c.roles.filter(function (x) { return x.role === r; })[0]; };
    var cr = role('caller'), ag = role('agent');
    stat(clock(c.duration_ms), 'length');
    stat((cr ? cr.utterances : 0) + ' / ' + (ag ? ag.utterances : 0), 'utterances caller / agent');
    stat(clock(cr ? cr.talk_ms : 0) + ' / ' + clock(ag ? ag.talk_ms : 0), 'talk caller / agent');
    stat(clock(c.silence_ms), 'silence');
    stat((c.overlap_ms / 1000).toFixed(1) + ' s', 'overlap');
    stat(String(c.interruptions), 'interruptions');
    stat(c.latency_mean_ms == null ? '–' : c.latency_mean_ms + ' / ' + c.latency_worst_ms + ' ms', 'response latency mean / worst');
    stat(String(c.alerts.length), 'alerts');
    return box;
  }

  function legend(c) {
    var l = h('div', 'legend');
    function item(cls, text) { var sp = h('span'); sp.appendChild(h('i', 'sw ' + cls)); sp.appendChild(document.createTextNode(text)); l.appendChild(sp); }
    var count = function (r) { return c.utts.filter(function (u) { return u.role === r && u.emo; }).length; };
    if (count('caller')) item('caller', 'Caller');
    if (count('caller') > 1) item('line-c', 'caller trend');
    if (count('agent')) item('agent', 'Agent');
    if (count('agent') > 1) item('line-a', 'agent trend');
    if (c.alerts.length) item('alert', 'Alert');
    if (c.worst) item('worst', 'Worst moment');
    var hint = h('span', 'muted', 'Click a point, a bar or a line of the transcript');
    l.appendChild(hint);
    return l;
  }

  function transcript(c) {
    var ol = h('ol', 'transcript');
    ol.id = 'transcript';
    var items = c.utts.map(function (u) { return { at: u.start, u: u }; });
    c.alerts.forEach(function (a, i) { items.push({ at: a.at, a: a, i: i }); });
    items.sort(function (x, y) { return x.at - y.at || (x.a ? 1 : 0) - (y.a ? 1 : 0); });
    items.forEach(function (it) {
      var li;
      if (it.a) {
        li = h('li', 't-alert');
        li.appendChild(h('span', 't-time', clock(it.a.at)));
        li.appendChild(h('span', 't-who', '⚑ ' + it.a.kind.replace(/_/g, ' ')));
        li.appendChild(h('span', 't-text', it.a.reason || ''));
        li.setAttribute('data-alert', it.i);
        li.addEventListener('click', function () { selectAlert(it.i); });
      } else {
        var u = it.u;
        li = h('li', u.role);
        li.setAttribute('data-u', u.id);
        li.appendChild(h('span', 't-time', clock(u.start)));
        var who = h('span', 't-who', roleLabel(u.role));
        if (u.emo) {
          var chip = h('span', 't-emo emo e-' + u.emo.top, u.emo.top + ' ' + pct(u.emo.conf));
          who.appendChild(chip);
        }
        li.appendChild(who);
        li.appendChild(h('span', 't-text' + (u.text ? '' : ' empty'), u.text || '(no transcript)'));
        li.addEventListener('click', function () { select(u.id, false); });
      }
      ol.appendChild(li);
    });
    return ol;
  }

  // ----- timeline -----
  function draw() {
    var c = state.call;
    var box = document.getElementById('timeline');
    if (!c || !box) return;
    var m = METRICS[state.metric];
    var W = Math.max(320, Math.round(box.clientWidth || 800));
    var L = 58, R = 16, T = 26, PH = 200;
    var axisY = T + PH, laneY = axisY + 30, LH = 10, H = laneY + 2 * (LH + 6) + 4;
    var end = Math.max(c.duration_ms, 1);
    c.utts.forEach(function (u) { end = Math.max(end, u.end); });
    var x = function (ms) { return L + (W - L - R) * ms / end; };
    var y = function (v) { return T + PH * (1 - (Math.min(m.hi, Math.max(m.lo, v)) - m.lo) / (m.hi - m.lo)); };
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img' });
    svg.setAttribute('aria-label', 'Emotion over time: ' + metricTitle(m));

    // grid and y axis
    var ticks = m.lo < 0 ? [-1, -0.5, 0, 0.5, 1] : [0, 0.25, 0.5, 0.75, 1];
    ticks.forEach(function (v) {
      svg.appendChild(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), 'class': v === 0 && m.lo < 0 ? 'zero-line' : 'grid-line' }));
      var t = s('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end' });
      t.textContent = m.lo < 0 ? (v > 0 ? '+' : v < 0 ? '−' : '') + Math.abs(v) : Math.round(v * 100) + '%';
      svg.appendChild(t);
    });
    if (m.chance !== undefined) {
      svg.appendChild(title(s('line', { x1: L, x2: W - R, y1: y(m.chance), y2: y(m.chance), 'class': 'chance-line' }),
        'chance: ' + pct(m.chance)));
      var ct = s('text', { x: W - R - 4, y: y(m.chance) - 4, 'text-anchor': 'end' });
      ct.textContent = 'chance';
      svg.appendChild(ct);
    }
    var yt = s('text', { x: 12, y: T + PH / 2, 'class': 'axis-title', 'text-anchor': 'middle', transform: 'rotate(-90 12 ' + (T + PH / 2) + ')' });
    yt.textContent = m.label;
    svg.appendChild(yt);

    // x axis ticks
    var steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    var room = (W - L - R) / 70, step = steps[steps.length - 1];
    for (var i = 0; i < steps.length; i++) if (end / 1000 / steps[i] <= room) { step = steps[i]; break; }
    for (var tsec = 0; tsec * 1000 <= end; tsec += step) {
      var tx = x(tsec * 1000);
      svg.appendChild(s('line', { x1: tx, x2: tx, y1: T, y2: axisY, 'class': 'grid-line', opacity: 0.5 }));
      var lab = s('text', { x: tx, y: axisY + 16, 'text-anchor': 'middle' });
      lab.textContent = clock(tsec * 1000);
      svg.appendChild(lab);
    }

    // speaker lanes
    ['caller', 'agent'].forEach(function (r, k) {
      var ly = laneY + k * (LH + 6);
      svg.appendChild(s('rect', { x: L, y: ly, width: W - L - R, height: LH, rx: 3, 'class': 'lane-bg' }));
      var lt = s('text', { x: L - 8, y: ly + LH - 1, 'text-anchor': 'end' });
      lt.textContent = roleLabel(r);
      svg.appendChild(lt);
    });
    c.utts.forEach(function (u) {
      var k = u.role === 'agent' ? 1 : 0;
      var bar = s('rect', { x: x(u.start), y: laneY + k * (LH + 6), width: Math.max(2, x(u.end) - x(u.start)), height: LH, rx: 3,
        'class': 'seg-bar ' + (u.role === 'agent' ? 'agent' : 'caller'), 'data-u': u.id });
      title(bar, roleLabel(u.role) + ' ' + clock(u.start, true) + '–' + clock(u.end, true));
      bar.addEventListener('click', function () { select(u.id, true); });
      svg.appendChild(bar);
    });

    // alerts
    c.alerts.forEach(function (a, i) {
      var ax = x(a.at);
      svg.appendChild(s('line', { x1: ax, x2: ax, y1: T - 4, y2: axisY, 'class': 'alert-line' }));
      var mark = s('path', { d: 'M' + (ax - 7) + ' ' + 6 + ' L' + (ax + 7) + ' 6 L' + ax + ' ' + 18 + ' Z',
        'class': 'alert-mark' + (a.severity < 0.5 ? ' weak' : ''), 'data-alert': i });
      title(mark, a.kind.replace(/_/g, ' ') + ' (severity ' + a.severity.toFixed(2) + ') at ' + clock(a.at) + ': ' + a.reason);
      mark.addEventListener('click', function () { selectAlert(i); });
      svg.appendChild(mark);
    });

    // series and points
    var scored = c.utts.filter(function (u) { return u.emo; });
    ['caller', 'agent', 'unspecified'].forEach(function (r) {
      var pts = scored.filter(function (u) { return u.role === r; });
      if (pts.length > 1) {
        var d = pts.map(function (u, j) { return (j ? 'L' : 'M') + x((u.start + u.end) / 2).toFixed(1) + ' ' + y(m.f(u.emo)).toFixed(1); }).join(' ');
        svg.appendChild(s('path', { d: d, 'class': 'series ' + (r === 'agent' ? 'agent' : 'caller') }));
      }
    });
    if (c.worst) {
      var wu = scored.filter(function (u) { return u.id === c.worst.id; })[0];
      if (wu) svg.appendChild(s('circle', { cx: x((wu.start + wu.end) / 2), cy: y(m.f(wu.emo)), r: 14, 'class': 'worst-halo' }));
    }
    var ring = s('circle', { r: 10, 'class': 'sel-ring', visibility: 'hidden' });
    scored.forEach(function (u) {
      var px = x((u.start + u.end) / 2), py = y(m.f(u.emo)), p;
      if (u.role === 'agent') {
        p = s('rect', { x: px - 5, y: py - 5, width: 10, height: 10, transform: 'rotate(45 ' + px + ' ' + py + ')', 'class': 'pt agent' });
      } else {
        p = s('circle', { cx: px, cy: py, r: 6, 'class': 'pt caller' });
      }
      p.setAttribute('data-u', u.id);
      p.setAttribute('data-x', px.toFixed(1));
      p.setAttribute('data-y', py.toFixed(1));
      title(p, roleLabel(u.role) + ' ' + clock(u.start, true) + ' · ' + m.label.toLowerCase() + ' ' +
        (m.lo < 0 ? signed(m.f(u.emo)) : pct(m.f(u.emo))) + ' · ' + u.emo.top);
      p.addEventListener('click', function () { select(u.id, true); });
      svg.appendChild(p);
    });
    svg.appendChild(ring);
    if (!scored.length) {
      var none = s('text', { x: (L + W - R) / 2, y: T + PH / 2, 'text-anchor': 'middle' });
      none.textContent = 'No emotion scores in this call (analysed with --no-emotion)';
      svg.appendChild(none);
    }
    box.textContent = '';
    box.appendChild(svg);
    markSelection();
  }

  function markSelection() {
    var svg = document.querySelector('#timeline svg');
    if (!svg) return;
    var ring = svg.querySelector('.sel-ring');
    var p = state.sel && state.sel.u ? svg.querySelector('.pt[data-u="' + cssId(state.sel.u) + '"]') : null;
    if (p && ring) {
      ring.setAttribute('cx', p.getAttribute('data-x'));
      ring.setAttribute('cy', p.getAttribute('data-y'));
      ring.setAttribute('visibility', 'visible');
    } else if (ring) {
      ring.setAttribute('visibility', 'hidden');
    }
    Array.prototype.forEach.call(document.querySelectorAll('#transcript li'), function (li) {
      var on = state.sel && ((state.sel.u && li.getAttribute('data-u') === state.sel.u) ||
        (state.sel.a !== undefined && li.getAttribute('data-alert') === String(state.sel.a)));
      li.classList.toggle('selected', !!on);
    });
  }
  function cssId(id) { return String(id).replace(/["\\]/g, '\\$&'); }

  function utt(id) { return state.call.utts.filter(function (u) { return u.id === id; })[0]; }

  function select(id, scrollList) {
    var u = utt(id);
    if (!u) return;
    state.sel = { u: id };
    var d = document.getElementById('detail');
    d.textContent = '';
    d.setAttribute('data-u', id);
    var head = h('div', 'd-head');
    head.appendChild(h('span', 'role ' + u.role, roleLabel(u.role)));
    head.appendChild(h('span', 'd-time', clock(u.start, true) + ' – ' + clock(u.end, true)));
    head.appendChild(h('span', 'd-id', u.id));
    if (state.call.worst && state.call.worst.id === id) head.appendChild(h('span', 'chip alert', 'worst moment'));
    d.appendChild(head);
    d.appendChild(h('p', 'd-text' + (u.text ? '' : ' empty'), u.text || 'No transcript (analysed without words, or nothing recognised).'));
    if (u.emo) {
      var bars = h('div', 'ebars');
      CLASSES.forEach(function (k) {
        bars.appendChild(h('span', 'emo e-' + k, k));
        var b = h('span', 'ebar e-' + k);
        var fill = h('i');
        fill.style.width = (u.emo[k] * 100).toFixed(1) + '%';
        b.appendChild(fill);
        bars.appendChild(b);
        bars.appendChild(h('span', 'pct', pct(u.emo[k])));
      });
      d.appendChild(bars);
      d.appendChild(h('div', 'va', 'Valence ' + signed(u.emo.valence) + ' · Arousal ' + signed(u.emo.arousal) +
        ' · top: ' + u.emo.top + ' ' + pct(u.emo.conf)));
    }
    if (u.cues.length) {
      d.appendChild(h('h4', '', 'Why'));
      var ul = h('ul', 'cues');
      u.cues.forEach(function (q) {
        var li = h('li');
        li.appendChild(h('span', 'w', signed(q.w)));
        li.appendChild(h('span', '', q.d));
        ul.appendChild(li);
      });
      d.appendChild(ul);
    } else if (u.emo) {
      d.appendChild(h('h4', '', 'Why'));
      d.appendChild(h('p', 'muted', 'No feature of the voice or the words pushed this label noticeably: ' +
        'it is what the model gives a voice close to its baseline.'));
    }
    markSelection();
    if (scrollList) scrollTranscript('[data-u="' + cssId(id) + '"]');
  }

  function selectAlert(i) {
    var a = state.call.alerts[i];
    if (!a) return;
    state.sel = { a: i };
    var d = document.getElementById('detail');
    d.textContent = '';
    d.removeAttribute('data-u');
    var head = h('div', 'd-head');
    head.appendChild(h('span', 'role alert', 'Alert'));
    head.appendChild(h('b', '', a.kind.replace(/_/g, ' ')));
    head.appendChild(h('span', '', 'at ' + clock(a.at, true) + ' · severity ' + a.severity.toFixed(2) +
      (a.role !== 'unspecified' ? ' · ' + a.role : '')));
    d.appendChild(head);
    d.appendChild(h('p', 'd-text' + (a.reason ? '' : ' empty'), a.reason || 'No reason given.'));
    if (a.ids.length) {
      d.appendChild(h('h4', '', 'Utterances behind it'));
      var p = h('p');
      a.ids.forEach(function (id, j) {
        if (j) p.appendChild(document.createTextNode(', '));
        var link = h('a', 'jump', id);
        link.href = '#';
        link.addEventListener('click', function (ev) { ev.preventDefault(); select(id, true); });
        p.appendChild(link);
      });
      d.appendChild(p);
    }
    markSelection();
    scrollTranscript('[data-alert="' + i + '"]');
  }

  function showEmpty() {
    var d = document.getElementById('detail');
    d.textContent = '';
    d.appendChild(h('p', 'd-text empty', 'No utterances in this call.'));
  }

  function scrollTranscript(sel) {
    var list = document.getElementById('transcript');
    var li = list && list.querySelector(sel);
    if (!li) return;
    var top = li.offsetTop - list.offsetTop;
    if (top < list.scrollTop || top + li.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  function fromHash() {
    var m = /^#call=(.*)$/.exec(location.hash);
    var name = m ? decodeURIComponent(m[1]) : null;
    if (name && BY_NAME[name]) { show(name, state.call !== null); return true; }
    return false;
  }
  window.addEventListener('hashchange', fromHash);
  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 120);
  });
  if (!fromHash() && CALLS.length) show(CALLS[0].name, false);
})();
