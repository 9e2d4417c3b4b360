// podflow's service map: the Node Graph API's nodes and edges (/api/graph/data), drawn with Cytoscape.js
// and laid out by fCoSE. Filters for namespace and window; a click on a workload or an arrow shows its
// numbers. Everything it loads comes from the collector that serves it.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);

  // Colours by workload kind; anything else is slate.
  const KIND_COLOURS = {
    Deployment: '#3b82f6',
    StatefulSet: '#10b981',
    DaemonSet: '#f59e0b',
    ReplicaSet: '#6366f1',
    Job: '#ef4444',
    CronJob: '#ec4899',
    Pod: '#0ea5e9',
    Service: '#a78bfa',
    Node: '#78716c',
    external: '#94a3b8',
    unknown: '#d1d5db',
  };
  // Above this many edges their rates are not written on them: the arrows' width still tells.
  const EDGE_LABELS_UP_TO = 80;
  const REFRESH_MS = 10000;

  const params = new URLSearchParams(location.search);
  const state = {
    namespace: params.get('namespace') || '',
    window: params.get('window') || '5m',
    selected: null,
    generation: 0,
    drawnKey: '',
  };

  cytoscape.use(cytoscapeFcose);
  const cy = cytoscape({
    container: $('graph'),
    minZoom: 0.05,
    maxZoom: 4,
    wheelSensitivity: 0.3,
    style: [
      {
        selector: 'node',
        style: {
          'background-color': 'data(colour)',
          width: 'data(size)',
          height: 'data(size)',
          label: 'data(label)',
          'text-wrap': 'wrap',
          'text-valign': 'bottom',
          'text-margin-y': 4,
          'font-size': 11,
          color: '#1f2937',
          'text-background-color': '#ffffff',
          'text-background-opacity': 0.8,
          'text-background-padding': 1,
          'min-zoomed-font-size': 7,
          'border-width': 1,
          'border-color': '#475569',
        },
      },
      { selector: 'node[kind = "unknown"]', style: { 'border-style': 'dashed' } },
      {
        selector: 'edge',
        style: {
          width: 'data(width)',
          'line-color': '#94a3b8',
          'target-arrow-color': '#94a3b8',
          'target-arrow-shape': 'triangle',
          'arrow-scale': 0.9,
          'curve-style': 'bezier',
          opacity: 0.85,
        },
      },
      {
        selector: 'edge.labelled',
        style: {
          label: 'data(label)',
          'font-size': 9,
          color: '#475569',
          'text-rotation': 'autorotate',
          'text-background-color': '#ffffff',
          'text-background-opacity': 0.8,
          'min-zoomed-font-size': 7,
        },
      },
      { selector: '.faded', style: { opacity: 0.15 } },
      { selector: 'node:selected', style: { 'border-width': 4, 'border-color': '#0f172a' } },
      {
        selector: 'edge:selected',
        style: { 'line-color': '#0f172a', 'target-arrow-color': '#0f172a', opacity: 1 },
      },
    ],
  });
  // For tests and curious operators: the graph, and how many answers have been drawn.
  window.podflowMap = { cy, draws: 0, layouts: 0, error: null };

  function bytesRate(v) {
    const units = ['B/s', 'kB/s', 'MB/s', 'GB/s', 'TB/s'];
    let i = 0;
    while (v >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    const digits = v < 10 ? 2 : v < 100 ? 1 : 0;
    return `${v.toFixed(digits)} ${units[i]}`;
  }
  const perSecond = (v) => `${Number(v.toFixed(4))}/s`;
  const count = (v) => Number(v).toLocaleString('en-US');
  const share = (v) => `${(v * 100).toFixed(1)} %`;
  const sizeOf = (rate) => Math.min(72, 22 + 8 * Math.log10(1 + rate));
  const widthOf = (rate) => Math.min(10, 1 + 1.2 * Math.log10(1 + rate));

  function query(withNamespace) {
    const q = new URLSearchParams();
    if (withNamespace && state.namespace) q.set('namespace', state.namespace);
    q.set('window', state.window);
    return q.toString();
  }

  async function fetchJson(url) {
    const r = await fetch(url, { headers: { Accept: 'application/json' } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `${url}: ${r.status} ${r.statusText}`);
    return body;
  }

  function setStatus(text, error) {
    const s = $('status');
    s.textContent = text;
    s.classList.toggle('error', Boolean(error));
  }

  function updateNamespaces(names) {
    const sel = $('namespace');
    const wanted = ['', ...names];
    if (state.namespace && !names.includes(state.namespace)) wanted.push(state.namespace);
    const have = Array.from(sel.options, (o) => o.value);
    if (have.join('\n') !== wanted.join('\n')) {
      sel.replaceChildren(
        ...wanted.map((n) => {
          const o = document.createElement('option');
          o.value = n;
          o.textContent = n || 'all namespaces';
          return o;
        }),
      );
    }
    sel.value = state.namespace;
  }

  function elementsOf(data) {
    const nodes = data.nodes.map((n) => ({
      group: 'nodes',
      data: {
        ...n,
        kind: n.detail__kind,
        label: `${n.title}\n${n.subTitle}`,
        colour: KIND_COLOURS[n.detail__kind] || '#64748b',
        size: sizeOf(n.mainStat),
      },
    }));
    const labelled = data.edges.length <= EDGE_LABELS_UP_TO;
    const edges = data.edges.map((e) => ({
      group: 'edges',
      classes: labelled ? 'labelled' : '',
      data: { ...e, label: bytesRate(e.mainStat), width: widthOf(e.mainStat) },
    }));
    return nodes.concat(edges);
  }

  function draw(data) {
    const elements = elementsOf(data);
    const key = elements.map((e) => e.data.id).sort().join('\n');
    if (key === state.drawnKey) {
      // The same graph with new numbers: keep the layout the reader has in mind.
      cy.batch(() => elements.forEach((e) => cy.getElementById(e.data.id).data(e.data)));
    } else {
      const fresh = state.drawnKey === '';
      const old = new Set(cy.elements().map((e) => e.id()));
      cy.batch(() => {
        cy.elements().remove();
        cy.add(elements);
      });
      // A graph that changed a little starts from where its workloads were.
      const moved = elements.filter((e) => !old.has(e.data.id)).length;
      const randomize = fresh || moved > elements.length / 2;
      state.drawnKey = key;
      if (cy.nodes().length > 0) {
        const layout = cy.layout({
          name: 'fcose',
          quality: cy.nodes().length > 300 ? 'draft' : 'default',
          randomize,
          animate: false,
          nodeDimensionsIncludeLabels: true,
          nodeRepulsion: () => 9000,
          idealEdgeLength: () => 90,
          nodeSeparation: 90,
          packComponents: true,
          padding: 30,
        });
        layout.one('layoutstop', () => {
          window.podflowMap.layouts += 1;
        });
        layout.run();
      }
    }
    const sel = state.selected && cy.getElementById(state.selected);
    if (sel && sel.nonempty()) {
      sel.select();
      showDetails(sel);
    } else {
      state.selected = null;
      clearDetails();
    }
    const edges = data.edges.length;
    setStatus(
      `${data.nodes.length} workloads, ${edges} client-server pairs, window ${state.window}` +
        ` (${new Date().toLocaleTimeString('en-GB')})`,
    );
    window.podflowMap.draws += 1;
  }

  async function load() {
    const generation = ++state.generation;
    try {
      const [data, ns] = await Promise.all([
        fetchJson(`/api/graph/data?${query(true)}`),
        fetchJson(`/api/graph/namespaces?${query(false)}`),
      ]);
      // An answer to an older choice of filters is not drawn.
      if (generation !== state.generation) return;
      updateNamespaces(ns.namespaces);
      draw(data);
      window.podflowMap.error = null;
    } catch (e) {
      window.podflowMap.error = String(e.message || e);
      setStatus(`could not load the graph: ${window.podflowMap.error}`, true);
    }
  }

  function row(dl, label, field, value) {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.dataset.field = field;
    dd.textContent = value;
    dl.append(dt, dd);
  }

  function clearDetails() {
    const p = document.createElement('p');
    p.className = 'hint';
    p.textContent =
      'Click a workload or an arrow to see its numbers. Arrows point from client to server; ' +
      'their width follows the traffic.';
    const legend = document.createElement('div');
    legend.className = 'legend';
    for (const [kind, colour] of Object.entries(KIND_COLOURS)) {
      const dot = document.createElement('span');
      dot.style.background = colour;
      legend.append(dot, kind);
    }
    $('details').replaceChildren(p, legend);
  }

  function showDetails(el) {
    const d = el.data();
    const h = document.createElement('h2');
    const sub = document.createElement('p');
    sub.className = 'sub';
    const dl = document.createElement('dl');
    if (el.isNode()) {
      h.textContent = d.title;
      sub.textContent = `${d.detail__kind} in ${d.detail__namespace}`;
      row(dl, 'Traffic', 'mainStat', bytesRate(d.mainStat));
      row(dl, 'Connections', 'secondaryStat', perSecond(d.secondaryStat));
      row(dl, 'Bytes sent', 'detail__bytes_sent', count(d.detail__bytes_sent));
      row(dl, 'Bytes received', 'detail__bytes_received', count(d.detail__bytes_received));
      row(dl, 'Sent share', 'arc__sent', share(d.arc__sent));
      row(dl, 'Connections in window', 'detail__connections', count(d.detail__connections));
      row(dl, 'Calls', 'calls', String(el.outgoers('edge').length));
      row(dl, 'Called by', 'called_by', String(el.incomers('edge').length));
      row(dl, 'Kind', 'detail__kind', d.detail__kind);
      row(dl, 'Namespace', 'detail__namespace', d.detail__namespace);
      row(dl, 'Nodes', 'detail__nodes', d.detail__nodes || 'not known');
    } else {
      const s = el.source().data();
      const t = el.target().data();
      h.textContent = `${s.title} \u2192 ${t.title}`;
      sub.textContent = `${s.subTitle}/${s.title} to ${t.subTitle}/${t.title}`;
      row(dl, 'Traffic', 'mainStat', bytesRate(d.mainStat));
      row(dl, 'Connections', 'secondaryStat', perSecond(d.secondaryStat));
      row(dl, 'Request bytes', 'detail__request_bytes', count(d.detail__request_bytes));
      row(dl, 'Response bytes', 'detail__response_bytes', count(d.detail__response_bytes));
      row(dl, 'Connections in window', 'detail__connections', count(d.detail__connections));
      row(dl, 'Packets', 'detail__packets', count(d.detail__packets));
      row(dl, 'Services', 'detail__services', d.detail__services || 'none');
      row(dl, 'Protocols', 'detail__protocols', d.detail__protocols);
    }
    $('details').replaceChildren(h, sub, dl);
  }

  cy.on('tap', 'node, edge', (ev) => {
    const el = ev.target;
    state.selected = el.id();
    cy.elements().removeClass('faded');
    const keep = el.isNode() ? el.closedNeighborhood() : el.union(el.connectedNodes());
    cy.elements().not(keep).addClass('faded');
    showDetails(el);
  });
  cy.on('tap', (ev) => {
    if (ev.target === cy) {
      state.selected = null;
      cy.elements().removeClass('faded');
      clearDetails();
    }
  });

  function filtersChanged() {
    state.namespace = $('namespace').value;
    state.window = $('window').value;
    state.drawnKey = '';
    state.selected = null;
    const q = new URLSearchParams(query(true));
    history.replaceState(null, '', `${location.pathname}?${q}`);
    load();
  }
  $('namespace').addEventListener('change', filtersChanged);
  $('window').addEventListener('change', filtersChanged);

  $('window').value = state.window;
  clearDetails();
  load();
  setInterval(() => {
    if ($('auto').checked && !document.hidden) load();
  }, REFRESH_MS);
})();
