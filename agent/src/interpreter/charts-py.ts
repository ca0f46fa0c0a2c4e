/**
 * Python source that turns open matplotlib figures into Daytona-shaped charts (see ChartShape in
 * wire/interpreter.ts). Shared by the interpreter kernel (kernel-py.ts) and python code-run (process/code-run.ts);
 * each runs it in a namespace of its own, so none of its names reach user code.
 *
 * It imports nothing from matplotlib until pyplot is imported by the user's code: `install(captured)` puts a
 * finder at the front of `sys.meta_path` that reacts only to `matplotlib.pyplot`, and once pyplot has loaded it
 * wraps `pyplot.show` (figures shown are rendered into `captured` and closed, as Jupyter's inline backend does, and
 * Agg's "cannot show the figure" warning never appears) and `Axes.bxp` (box plot statistics are remembered on the
 * axes: a box plot is only lines once drawn), then calls `on_loaded` if given. `take_open()` renders and closes
 * every figure still open.
 *
 * The PNG is rendered first: tick labels only exist once a figure has been drawn. Numbers that JSON cannot carry
 * (NaN, infinities) become null.
 */
export const CHARTS_PY = String.raw`
import sys

MAX_CHARTS = 50
MAX_PNG_CHARS = 8 * 1024 * 1024
NON_GUI = {'agg', 'pdf', 'ps', 'svg', 'pgf', 'cairo', 'template'}


def _num(v):
    try:
        f = float(v)
    except Exception:
        return None
    if f != f or f in (float('inf'), float('-inf')):
        return None
    return f


def _value_text(v):
    f = _num(v)
    if f is None:
        return None
    return str(int(f)) if f.is_integer() else repr(f)


def _label(artist):
    text = artist.get_label()
    text = '' if text is None else str(text)
    # matplotlib names unlabelled artists "_child0", "_nolegend_"...: not a label anyone gave.
    return '' if text.startswith('_') else text


def _points(xy):
    return [[_num(p[0]), _num(p[1])] for p in xy if len(p) >= 2]


def _texts(labels):
    return [str(t.get_text()) for t in labels]


def _scale(axis, scale):
    import matplotlib.dates as mdates
    import matplotlib.category as mcat
    conv = axis.get_converter() if hasattr(axis, 'get_converter') else getattr(axis, 'converter', None)
    if isinstance(conv, mcat.StrCategoryConverter):
        return 'categorical'
    if isinstance(conv, (mdates.DateConverter, getattr(mdates, '_SwitchableDateConverter', mdates.DateConverter), mdates.ConciseDateConverter)):
        return 'datetime'
    return str(scale)


def _axes_fields(ax):
    return {
        'x_label': str(ax.get_xlabel()),
        'y_label': str(ax.get_ylabel()),
        'x_ticks': [_num(t) for t in ax.get_xticks()],
        'y_ticks': [_num(t) for t in ax.get_yticks()],
        'x_tick_labels': _texts(ax.get_xticklabels()),
        'y_tick_labels': _texts(ax.get_yticklabels()),
        'x_scale': _scale(ax.xaxis, ax.get_xscale()),
        'y_scale': _scale(ax.yaxis, ax.get_yscale()),
    }


def _tick_label(ticks, labels, position):
    best = None
    for tick, text in zip(ticks, labels):
        t = _num(tick)
        if t is not None and abs(t - position) < 1e-6 * max(1.0, abs(position)):
            best = text
            break
    if best:
        return best
    return _value_text(position) or ''


def _bar_elements(ax, bars):
    elements = []
    for container in bars:
        group = _label(container)
        horizontal = getattr(container, 'orientation', None) == 'horizontal'
        values = getattr(container, 'datavalues', None)
        if horizontal:
            ticks, labels = ax.get_yticks(), _texts(ax.get_yticklabels())
        else:
            ticks, labels = ax.get_xticks(), _texts(ax.get_xticklabels())
        for i, rect in enumerate(container.patches):
            if horizontal:
                position = rect.get_y() + rect.get_height() / 2
                value = rect.get_width()
            else:
                position = rect.get_x() + rect.get_width() / 2
                value = rect.get_height()
            if values is not None and i < len(values):
                value = values[i]
            elements.append({'label': _tick_label(ticks, labels, position), 'group': group, 'value': _value_text(value)})
    return elements


def _box_elements(ax, stats):
    labels = _texts(ax.get_xticklabels()) or _texts(ax.get_yticklabels())
    elements = []
    for i, s in enumerate(stats):
        label = s.get('label')
        if label is None:
            label = labels[i] if i < len(labels) else str(i + 1)
        elements.append({
            'label': str(label),
            'min': _num(s.get('whislo')),
            'first_quartile': _num(s.get('q1')),
            'median': _num(s.get('med')),
            'third_quartile': _num(s.get('q3')),
            'max': _num(s.get('whishi')),
            'outliers': [_num(v) for v in (s.get('fliers') if s.get('fliers') is not None else [])],
        })
    return elements


def _axes_chart(ax):
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.patches import Wedge
    chart = {'type': 'unknown', 'title': str(ax.get_title()), 'elements': []}
    box = getattr(ax, '_cove_box_stats', None)
    if box:
        chart.update(_axes_fields(ax))
        chart['type'] = 'box_and_whisker'
        chart['elements'] = _box_elements(ax, box)
        return chart
    # Lines drawn in data coordinates only: axhline/axvline and friends are decorations.
    lines = [l for l in ax.get_lines() if l.get_visible() and l.get_transform() == ax.transData]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    wedges = [p for p in ax.patches if isinstance(p, Wedge)]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    kinds = [k for k, present in (('line', lines), ('bar', bars), ('pie', wedges), ('scatter', scatters)) if present]
    if len(kinds) != 1:
        if ax.get_subplotspec() is not None or kinds:
            chart.update(_axes_fields(ax))
        return chart
    kind = kinds[0]
    chart['type'] = kind
    if kind == 'pie':
        chart['elements'] = [{'label': _label(w), 'angle': _num(abs(w.theta2 - w.theta1)), 'radius': _num(w.r)} for w in wedges]
        return chart
    chart.update(_axes_fields(ax))
    if kind == 'line':
        chart['elements'] = [{'label': _label(l), 'points': _points(l.get_xydata())} for l in lines]
    elif kind == 'scatter':
        chart['elements'] = [{'label': _label(c), 'points': _points(c.get_offsets())} for c in scatters]
    else:
        chart['elements'] = _bar_elements(ax, bars)
    return chart


def _is_colorbar(ax):
    return ax.get_label() == '<colorbar>' or getattr(ax, '_colorbar', None) is not None


def figure_chart(fig):
    import base64
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', bbox_inches='tight', dpi=100)
    png = base64.b64encode(buffer.getvalue()).decode('ascii')
    suptitle = getattr(fig, '_suptitle', None)
    suptitle = str(suptitle.get_text()) if suptitle is not None else ''
    axes = [ax for ax in fig.axes if not _is_colorbar(ax) and (ax.has_data() or ax.get_title())]
    charts = []
    for ax in axes:
        try:
            charts.append(_axes_chart(ax))
        except Exception:
            charts.append({'type': 'unknown', 'title': str(ax.get_title()), 'elements': []})
    if len(charts) == 1:
        chart = charts[0]
        if not chart.get('title'):
            chart['title'] = suptitle
    elif charts:
        chart = {'type': 'composite_chart', 'title': suptitle, 'elements': charts}
    else:
        chart = {'type': 'unknown', 'title': suptitle, 'elements': []}
    if len(png) <= MAX_PNG_CHARS:
        chart['png'] = png
    return chart


def take_open(into):
    """Renders every open pyplot figure into the list 'into' (at most MAX_CHARTS), then closes them all."""
    plt = sys.modules.get('matplotlib.pyplot')
    if plt is None:
        return into
    from matplotlib._pylab_helpers import Gcf
    for manager in list(Gcf.get_all_fig_managers()):
        if len(into) >= MAX_CHARTS:
            break
        try:
            into.append(figure_chart(manager.canvas.figure))
        except Exception as e:
            sys.stderr.write('[cove: could not render figure %s: %s: %s]\n' % (manager.num, type(e).__name__, e))
    plt.close('all')
    return into


def _patch_pyplot(plt, captured):
    original_show = plt.show

    def show(*args, **kwargs):
        import matplotlib
        if str(matplotlib.get_backend()).lower() not in NON_GUI:
            return original_show(*args, **kwargs)
        take_open(captured)

    show.__doc__ = original_show.__doc__
    show.__wrapped__ = original_show
    plt.show = show

    from matplotlib.axes import Axes
    original_bxp = Axes.bxp

    def bxp(self, bxpstats, *args, **kwargs):
        result = original_bxp(self, bxpstats, *args, **kwargs)
        try:
            stats = [dict(s) for s in bxpstats]
            self._cove_box_stats = (getattr(self, '_cove_box_stats', None) or []) + stats
        except Exception:
            pass
        return result

    bxp.__wrapped__ = original_bxp
    Axes.bxp = bxp


class _Loader:
    def __init__(self, inner, captured, on_loaded):
        self._inner = inner
        self._captured = captured
        self._on_loaded = on_loaded

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        try:
            _patch_pyplot(module, self._captured)
        except Exception:
            pass
        if self._on_loaded is not None:
            self._on_loaded()

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _PyplotFinder:
    def __init__(self, captured, on_loaded=None):
        self._captured = captured
        self._on_loaded = on_loaded

    def find_spec(self, name, path=None, target=None):
        if name != 'matplotlib.pyplot':
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        import importlib.util
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, 'exec_module'):
            spec.loader = _Loader(spec.loader, self._captured, self._on_loaded)
        return spec


def install(captured):
    """Wraps pyplot once user code imports it; figures shown go to the list 'captured'."""
    plt = sys.modules.get('matplotlib.pyplot')
    if plt is not None:
        _patch_pyplot(plt, captured)
    else:
        sys.meta_path.insert(0, _PyplotFinder(captured))
`;
