"""The fused training step and the fused predictor, built as ``fastnn._fused``.

A Keras-style ``Sequential`` of Dense / Activation / Dropout layers, with a
built-in loss and optimizer, is described once by a *plan* (layer sizes,
activation codes, loss and optimizer codes with their hyper-parameters,
pointers to the layers' own parameter and gradient arrays and to the
optimizer's own state arrays, and workspaces sized for the batch). A chunk of
training steps then runs here without the GIL and without touching Python:

    for each batch of the chunk:
        the batch rows of x by the epoch's shuffled index: a first Dense layer's
        forward GEMM reads them where they lie (it takes the row numbers), and
        they are gathered for the backward pass while in cache; any other first
        layer gets the gathered copy up front
        forward:   Dense = one GEMM with the bias + activation epilogue,
                   Activation = one element-wise (or row-wise softmax) pass,
                   Dropout = multiply by a mask built from pre-drawn uniforms
        loss and its gradient (softmax/sigmoid + cross-entropy fused on the logits
        when the model fuses them), the batch output for the metrics
        backward:  the same dense / activation / dropout kernels in reverse
        regularization penalties and their gradients, gradient clipping,
        the optimizer update of every parameter (one parallel loop over all of them)
        loss_sum += (loss + penalties) * batch size

Every numeric step calls the very kernels of csrc/kernels.pxd that the per-op
fast backend calls, with the same arguments and in the same order, so the
weights come out bit-identical to the per-op path (tests/test_backends_fused.py
checks it). The Python side (fastnn/backends/fused.py) decides whether a model
qualifies, builds the plan and drives the chunks.

Threads, two ways. Where a layer's weights fit a core's L2 (the seed MLP), a
chunk runs as one team of threads (``_team_chunk``): one parallel region for the
whole chunk, each thread taking its rows of the batch through forward, loss and
backward, then its rows of every weight gradient, updated as they are computed,
with two barriers a step. Otherwise, kernel by kernel: a GEMM gets all threads
when its work is large enough (the GEMM itself splits blocks); element-wise
kernels get them above ``parallel_threshold``; the optimizer update runs one
parallel loop over fixed pieces of all parameters at once. Parallel regions are
never nested: kernels called inside a region run with one thread. Either way,
the same bits for any thread count.
"""
import numpy as np

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite, sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from kernels cimport (
    CHUNK, LOSS_BCE, LOSS_CCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SPARSE_CCE,
    act_backward, act_forward, adagrad_update, adam_update, all_finite_values, bias_grad_part,
    clip_values, dense_backward, dense_forward, gemm_part, gemm_rows_in_place, l1l2_grad,
    loss_rows, loss_rows_part, loss_rows_total, rmsprop_update, scale, sgd_update,
    softmax_backward_rows, softmax_rows, sum_abs, sum_squares,
)
from gemm cimport FNN_ACT_LINEAR, FNN_ACT_LOG_SOFTMAX, FNN_ACT_SOFTMAX

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fnn_fused_thread_num(void) { return omp_get_thread_num(); }
    static int fnn_fused_num_threads(void) { return omp_get_num_threads(); }
    /* An orphaned barrier: it binds to the team's region that calls it. */
    static void fnn_fused_barrier(void) {
        #pragma omp barrier
    }
    #else
    static int fnn_fused_thread_num(void) { return 0; }
    static int fnn_fused_num_threads(void) { return 1; }
    static void fnn_fused_barrier(void) {}
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define fnn_fused_prefetch(p) __builtin_prefetch((p), 0, 2)
    #else
    #define fnn_fused_prefetch(p) ((void)(p))
    #endif
    """
    int fnn_fused_thread_num() nogil
    int fnn_fused_num_threads() nogil
    void fnn_fused_barrier() nogil
    void fnn_fused_prefetch(const void *p) nogil

__all__ = ["Trainer", "Predictor", "NODE_DENSE", "NODE_ACTIVATION", "NODE_DROPOUT",
           "OPT_SGD", "OPT_ADAM", "OPT_RMSPROP", "OPT_ADAGRAD",
           "CLIP_NONE", "CLIP_VALUE", "CLIP_NORM", "CLIP_GLOBAL_NORM"]

cdef enum:
    _NODE_DENSE = 0
    _NODE_ACTIVATION = 1
    _NODE_DROPOUT = 2

cdef enum:
    _OPT_SGD = 0
    _OPT_ADAM = 1
    _OPT_RMSPROP = 2
    _OPT_ADAGRAD = 3

cdef enum:
    _CLIP_NONE = 0
    _CLIP_VALUE = 1
    _CLIP_NORM = 2
    _CLIP_GLOBAL_NORM = 3

NODE_DENSE, NODE_ACTIVATION, NODE_DROPOUT = _NODE_DENSE, _NODE_ACTIVATION, _NODE_DROPOUT
OPT_SGD, OPT_ADAM, OPT_RMSPROP, OPT_ADAGRAD = _OPT_SGD, _OPT_ADAM, _OPT_RMSPROP, _OPT_ADAGRAD
CLIP_NONE, CLIP_VALUE, CLIP_NORM, CLIP_GLOBAL_NORM = (
    _CLIP_NONE, _CLIP_VALUE, _CLIP_NORM, _CLIP_GLOBAL_NORM)

# Rough scalar operations per element (as fastnn.backends.fast counts them), to
# decide when a kernel is worth a second thread.
cdef enum:
    _UPDATE_COST = 12
    _COPY_COST = 2          # per element gathered: a read from a scattered row and a write
    _TRANSCENDENTAL_COST = 10


cdef struct Node:
    int kind
    Py_ssize_t n_in, n_out
    int code              # forward activation code (the GEMM epilogue for Dense)
    int bwd_code          # activation code differentiated in backward
    double param          # activation parameter
    double keep_scale     # dropout: 1 / (1 - rate), as NumPy computes it in float64
    double rate           # dropout rate
    int stream            # dropout: index of its stream of uniforms
    bint needs_input_grad # some trainable layer lies before this node
    char *kernel          # Dense: (n_in, n_out)
    char *bias            # Dense: (n_out,) or NULL
    char *grad_kernel     # NULL when the layer is not trainable
    char *grad_bias
    char *out             # (batch, n_out) workspace: this node's output
    char *preact          # Dense: (batch, n_out) or NULL (only activations that need it)
    char *mask            # Dropout: (batch, n_out)
    char *gout            # (batch, n_out): d loss / d out, kept per node by the team step
    int kernel_param      # Dense: index in params of the kernel (-1: not trained)
    int bias_param        # ... and of the bias


cdef struct Param:
    char *value
    char *grad
    char *s0              # optimizer state arrays (NULL where unused)
    char *s1
    char *s2
    Py_ssize_t size
    bint regularized
    double l1, l2
    int layer             # layer index, to add penalties per layer as the model does


cdef struct Plan:
    int n_nodes
    Node *nodes
    int n_params
    Param *params
    Py_ssize_t batch_size, n_in, n_out
    char *x0              # gathered input rows (batch, n_in)
    char *g0              # gradient ping-pong buffers (batch, max width)
    char *g1
    char *targets         # gathered float targets (batch, n_out)
    int64_t *labels       # gathered class labels (batch,)
    char *weights         # gathered sample weights (batch,)
    # loss
    int loss_code
    bint from_logits
    double loss_param
    bint sparse
    # the model output for the metrics, when the loss takes the logits
    bint logits_fused
    int out_code
    double out_param
    # optimizer
    int opt
    double h0, h1, h2, h3 # hyper-parameters (see Trainer.__init__)
    bint flag0, flag1     # nesterov / amsgrad / centered
    double weight_decay
    bint decoupled
    int clip_kind
    double clip_value
    bint any_regularized
    # update tasks: fixed CHUNK-sized pieces of all parameters
    Py_ssize_t n_tasks
    int *task_param
    Py_ssize_t *task_start
    Py_ssize_t *task_len
    # threads
    int max_threads
    Py_ssize_t parallel_threshold
    # the team step (see _team_chunk)
    int team              # -1 never, 0 when it pays, 1 wherever it applies
    bint team_applies     # no penalties and no norm clipping
    double step_work      # multiply-adds of one full step's products
    Py_ssize_t max_kernel_bytes   # the largest Dense kernel
    double *row_loss      # (batch,) each row's weighted loss
    # stop a chunk after the step whose running loss sum is not finite (set per run:
    # fit's TerminateOnNaN stops right after that batch on the per-op loop)
    bint stop_nonfinite


cdef inline int _threads(const Plan *p, double work) noexcept nogil:
    """All threads for work above the threshold, else one (config.threads_for)."""
    if p.max_threads <= 1 or work < p.parallel_threshold:
        return 1
    return p.max_threads


cdef inline char *_data(object a):
    """The data pointer of a NumPy array (NULL for None)."""
    if a is None:
        return NULL
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


# ---------------------------------------------------------------------------
# One optimizer update over a piece of one parameter (the kernels of kernels.pxd,
# single-threaded: the caller's loop over pieces is the parallel one)
# ---------------------------------------------------------------------------

cdef inline void _update_piece(const Plan *p, floating *dummy, Param *q, Py_ssize_t start,
                               Py_ssize_t n, double lr, long step) noexcept nogil:
    cdef floating *w = (<floating *>q.value) + start
    cdef floating *g = (<floating *>q.grad) + start
    cdef floating *s0 = ((<floating *>q.s0) + start) if q.s0 != NULL else NULL
    cdef floating *s1 = ((<floating *>q.s1) + start) if q.s1 != NULL else NULL
    cdef floating *s2 = ((<floating *>q.s2) + start) if q.s2 != NULL else NULL
    if p.opt == _OPT_SGD:
        # h0 momentum, h1 dampening; flag0 nesterov
        sgd_update(w, g, s0, n, lr, p.h0, p.h1, p.flag0, p.weight_decay, p.decoupled,
                   step == 1, 1)
    elif p.opt == _OPT_ADAM:
        # h0 beta_1, h1 beta_2, h2 epsilon; flag0 amsgrad; s0 m, s1 v, s2 v_max
        adam_update(w, g, s0, s1, s2, n, lr, p.h0, p.h1, p.h2, step, p.weight_decay,
                    p.decoupled, p.flag0, 1)
    elif p.opt == _OPT_RMSPROP:
        # h0 rho, h1 epsilon, h2 momentum; flag0 centered; s0 square avg, s1 momentum, s2 grad avg
        rmsprop_update(w, g, s0, s1, s2, n, lr, p.h0, p.h1, p.h2, p.flag0, p.weight_decay,
                       p.decoupled, 1)
    else:
        # h0 epsilon, h1 lr_decay; s0 sum of squares
        adagrad_update(w, g, s0, n, lr, p.h0, step, p.h1, p.weight_decay, p.decoupled, 1)


cdef void _update_all(const Plan *p, floating *dummy, double lr, long step) noexcept nogil:
    """Every parameter's update, in one parallel loop over fixed pieces."""
    cdef Py_ssize_t t, total = 0
    cdef int i, nt
    for i in range(p.n_params):
        total += p.params[i].size
    nt = _threads(p, <double>total * _UPDATE_COST)
    if nt <= 1 or p.n_tasks <= 1:
        for t in range(p.n_tasks):
            _update_piece(p, dummy, &p.params[p.task_param[t]], p.task_start[t], p.task_len[t],
                          lr, step)
        return
    # round robin (chunksize 1): the pieces of one big parameter are shared out evenly
    for t in prange(p.n_tasks, num_threads=nt, schedule='static', chunksize=1):
        _update_piece(p, dummy, &p.params[p.task_param[t]], p.task_start[t], p.task_len[t],
                      lr, step)


# ---------------------------------------------------------------------------
# Penalties, their gradients and gradient clipping (as the per-op path does them)
# ---------------------------------------------------------------------------

cdef double _penalties(const Plan *p, floating *dummy) noexcept nogil:
    """The model's regularization loss, added as Sequential.regularization_loss adds it:
    per weight l1 * sum|w| + l2 * sum w^2, per layer, then over layers."""
    cdef double total = 0, layer_total = 0, pen
    cdef int i, layer = -1
    cdef Param *q
    for i in range(p.n_params):
        q = &p.params[i]
        if not q.regularized:
            continue
        if q.layer != layer:
            total += layer_total
            layer_total = 0
            layer = q.layer
        pen = 0.0
        if q.l1 != 0:
            pen += q.l1 * sum_abs(<floating *>q.value, q.size, _threads(p, q.size))
        if q.l2 != 0:
            pen += q.l2 * sum_squares(<floating *>q.value, q.size, _threads(p, q.size))
        layer_total += pen
    return total + layer_total


cdef void _regularize_and_clip(const Plan *p, floating *dummy) noexcept nogil:
    cdef int i
    cdef Param *q
    cdef double total, norm
    if p.any_regularized:
        for i in range(p.n_params):
            q = &p.params[i]
            if q.regularized:
                l1l2_grad(<floating *>q.value, <floating>q.l1, <floating>q.l2,
                          <floating *>q.grad, q.size, _threads(p, q.size))
    if p.clip_kind == _CLIP_VALUE:
        for i in range(p.n_params):
            q = &p.params[i]
            clip_values(<floating *>q.grad, <floating>-p.clip_value, <floating>p.clip_value,
                        q.size, _threads(p, q.size))
    elif p.clip_kind == _CLIP_NORM:
        for i in range(p.n_params):
            q = &p.params[i]
            norm = sqrt(sum_squares(<floating *>q.grad, q.size, _threads(p, q.size)))
            if norm > p.clip_value:
                scale(<floating *>q.grad, <floating>(p.clip_value / norm), q.size,
                      _threads(p, q.size))
    elif p.clip_kind == _CLIP_GLOBAL_NORM:
        total = 0.0
        for i in range(p.n_params):
            q = &p.params[i]
            total += sum_squares(<floating *>q.grad, q.size, _threads(p, q.size))
        norm = sqrt(total)
        if norm > p.clip_value:
            for i in range(p.n_params):
                q = &p.params[i]
                scale(<floating *>q.grad, <floating>(p.clip_value / norm), q.size,
                      _threads(p, q.size))


# ---------------------------------------------------------------------------
# Forward and backward through the node list
# ---------------------------------------------------------------------------

cdef inline void _dropout_forward(const Node *nd, const floating *src, floating *dst,
                                  const double *u, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Dropout.forward on elements j0:j1: mask = (u >= rate) / (1 - rate) in float64,
    cast; y = x * mask."""
    cdef Py_ssize_t j
    cdef floating *mask = <floating *>nd.mask
    cdef floating keep = <floating>nd.keep_scale
    for j in range(j0, j1):
        mask[j] = keep if u[j] >= nd.rate else <floating>0
        dst[j] = src[j] * mask[j]


cdef void _forward(const Plan *p, floating *x0, const int64_t *rows, Py_ssize_t n,
                   const double **uniforms, Py_ssize_t *offsets) noexcept nogil:
    """Forward through every node on the n rows of x0; node i writes nodes[i].out.
    With ``rows`` (a first Dense node only), the batch's row i is row rows[i] of x0."""
    cdef int i
    cdef Py_ssize_t size
    cdef Node *nd
    cdef const floating *src = x0
    cdef floating *dst
    for i in range(p.n_nodes):
        nd = &p.nodes[i]
        dst = <floating *>nd.out
        size = n * nd.n_out
        if nd.kind == _NODE_DENSE:
            dense_forward(src, nd.n_in, False, rows if i == 0 else NULL, <floating *>nd.kernel,
                          nd.n_out, False, <floating *>nd.bias, nd.code, <floating>nd.param, dst,
                          <floating *>nd.preact, n, nd.n_in, nd.n_out,
                          _threads(p, <double>n * nd.n_in * nd.n_out))
        elif nd.kind == _NODE_ACTIVATION:
            if nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
                softmax_rows(src, dst, n, nd.n_out, nd.code == FNN_ACT_LOG_SOFTMAX,
                             _threads(p, <double>size * _TRANSCENDENTAL_COST))
            else:
                act_forward(nd.code, <floating>nd.param, src, dst, size,
                            _threads(p, <double>size * _TRANSCENDENTAL_COST))
        else:
            _dropout_forward(nd, src, dst, uniforms[nd.stream] + offsets[nd.stream], 0, size)
            offsets[nd.stream] += size
        src = dst


cdef void _backward(const Plan *p, floating *x0, Py_ssize_t n, floating *grad) noexcept nogil:
    """Backward from d loss / d (last node's output) in ``grad`` (a g0/g1 buffer);
    x0 holds the batch's input rows."""
    cdef int i
    cdef Py_ssize_t j, size
    cdef Node *nd
    cdef const floating *inp
    cdef floating *other
    cdef floating *mask
    for i in range(p.n_nodes - 1, -1, -1):
        nd = &p.nodes[i]
        if not nd.needs_input_grad and nd.grad_kernel == NULL:
            return  # nothing trainable from here down
        inp = <floating *>p.nodes[i - 1].out if i > 0 else x0
        size = n * nd.n_out
        if nd.kind == _NODE_DENSE:
            other = <floating *>(p.g1 if grad == <floating *>p.g0 else p.g0)
            # dz overwrites grad in place (the kernels allow it), grad_x goes to the other buffer
            dense_backward(grad, inp, nd.n_in, False, <floating *>nd.kernel, nd.n_out, False,
                           <floating *>nd.out, <floating *>nd.preact, nd.bwd_code,
                           <floating>nd.param, grad, <floating *>nd.grad_kernel, nd.n_out,
                           False, <floating *>nd.grad_bias,
                           other if nd.needs_input_grad else NULL,
                           n, nd.n_in, nd.n_out, False,
                           _threads(p, <double>n * nd.n_in * nd.n_out))
            grad = other
        elif nd.kind == _NODE_ACTIVATION:
            if nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
                softmax_backward_rows(grad, <floating *>nd.out, grad, n, nd.n_out,
                                      nd.code == FNN_ACT_LOG_SOFTMAX,
                                      _threads(p, <double>size * _TRANSCENDENTAL_COST))
            else:
                act_backward(nd.code, <floating>nd.param, grad, inp, <floating *>nd.out, grad,
                             size, _threads(p, <double>size * _TRANSCENDENTAL_COST))
        else:
            mask = <floating *>nd.mask
            for j in range(size):
                grad[j] = grad[j] * mask[j]
        if not nd.needs_input_grad:
            return


# ---------------------------------------------------------------------------
# A chunk of training steps
# ---------------------------------------------------------------------------

cdef inline void _prefetch_rows(const floating *x, const int64_t *rows, Py_ssize_t n,
                                Py_ssize_t width) noexcept nogil:
    """Prefetch hints for n rows of x (every 64-byte line of each)."""
    cdef Py_ssize_t i, off, nbytes = width * sizeof(floating)
    cdef const char *row
    for i in range(n):
        row = <const char *>(x + rows[i] * width)
        off = 0
        while off < nbytes:
            fnn_fused_prefetch(row + off)
            off += 64


cdef void _gather_rows(const floating *x,          # IN (rows of the data set, n_in)
                       const int64_t *rows,         # IN (n,) which rows, in order
                       Py_ssize_t n, Py_ssize_t n_in,
                       floating *out,               # OUT (n, n_in)
                       int threads) noexcept nogil:
    """out[i] = x[rows[i]]: the batch in the epoch's order. Split between threads for
    large batches (256 MNIST rows are 800 KB of copying, which otherwise ran on one
    core while the other waited for the first GEMM)."""
    cdef Py_ssize_t i
    if threads <= 1:
        for i in range(n):
            memcpy(out + i * n_in, x + rows[i] * n_in, n_in * sizeof(floating))
        return
    for i in prange(n, num_threads=threads, schedule='static'):
        memcpy(out + i * n_in, x + rows[i] * n_in, n_in * sizeof(floating))


cdef inline void _gather_targets(const Plan *p,
                                 const floating *targets,   # IN (rows of the data set, n_out) or NULL
                                 const int64_t *labels,     # IN (rows of the data set,) or NULL
                                 const floating *weights,   # IN (rows of the data set,) or NULL
                                 const int64_t *rows,       # IN (batch,) the batch's rows
                                 Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    """Rows i0:i1 of the batch's targets, labels and sample weights into the plan's
    buffers (p.targets, p.labels, p.weights)."""
    cdef Py_ssize_t i, r, n_out = p.n_out
    for i in range(i0, i1):
        r = rows[i]
        if targets != NULL:
            memcpy(<floating *>p.targets + i * n_out, targets + r * n_out,
                   n_out * sizeof(floating))
        if labels != NULL:
            p.labels[i] = labels[r]
        if weights != NULL:
            (<floating *>p.weights)[i] = weights[r]


cdef Py_ssize_t _train_chunk(const Plan *p, floating *dummy,
                             const floating *x, Py_ssize_t x_rows,
                             const floating *targets, const int64_t *labels,
                             const floating *weights, const int64_t *index,
                             Py_ssize_t start, Py_ssize_t stop,
                             const double *lrs, long step0,
                             const double **uniforms, Py_ssize_t *offsets,
                             floating *pred_out, double *loss_sum) noexcept nogil:
    """Steps over the batches [start, stop) of the epoch's order; returns the steps done."""
    cdef Py_ssize_t b0, n, s = 0
    cdef Py_ssize_t n_in = p.n_in, n_out = p.n_out
    cdef floating *x0 = <floating *>p.x0
    cdef floating *tg = <floating *>p.targets
    cdef floating *wt = <floating *>p.weights
    cdef floating *grad = <floating *>p.g0
    cdef const floating *xb
    cdef const int64_t *rows = NULL
    # A first Dense layer's forward GEMM reads the batch's rows where they lie in x
    # (it takes their row numbers): it streams each row from memory, which the
    # hardware prefetcher follows, where a gather of the cold rows stalled on every
    # row (and prefetch hints a step ahead stalled the main thread issuing them).
    # The weight gradient x^T dz then reads a copy, gathered while the rows are in
    # cache (the GEMM reads a transposed operand's rows through row numbers only
    # from a copy: see FNN_SUP_BY_ROW in csrc/gemm.c). Alternating epochs in one process, 2 threads:
    # batch 32, p10 of step times 126-176 -> 115-146 us (rows for both products),
    # then epoch medians 0.369-0.405 -> 0.345-0.356 s (the copy for x^T dz);
    # batch 256, p10 697-1078 -> 692-905 us, then medians 0.224-0.253 -> 0.208-0.247 s.
    # Where the forward GEMM would copy the rows itself (a wide first layer takes
    # the blocked path; one or two rows the one-row path), and for any other first
    # node, the batch is gathered first, in parallel, as it always was.
    cdef bint dense_first = index != NULL and p.nodes[0].kind == _NODE_DENSE
    cdef bint in_place = False
    cdef floating *probs
    cdef bint probs_from_loss = (p.logits_fused and p.from_logits
                                 and p.out_code == FNN_ACT_SOFTMAX
                                 and (p.loss_code == LOSS_CCE or p.loss_code == LOSS_SPARSE_CCE))
    cdef const floating *tb = NULL
    cdef const int64_t *lb = NULL
    cdef const floating *wb = NULL
    cdef const floating *z
    cdef const floating *y_out
    cdef Node *last = &p.nodes[p.n_nodes - 1]
    cdef double value
    b0 = start
    while b0 < stop:
        n = min(p.batch_size, stop - b0)
        # -- the batch: rows of x (and targets, weights) in the epoch's order
        if index == NULL:
            xb = x + b0 * n_in
            tb = (targets + b0 * n_out) if targets != NULL else NULL
            lb = (labels + b0) if labels != NULL else NULL
            wb = (weights + b0) if weights != NULL else NULL
        else:
            in_place = dense_first and gemm_rows_in_place(dummy, False, False, n,
                                                          p.nodes[0].n_out, n_in)
            rows = (index + b0) if in_place else NULL
            if not in_place:
                _gather_rows(x, index + b0, n, n_in, x0,
                             _threads(p, <double>n * n_in * _COPY_COST))
            _gather_targets(p, targets, labels, weights, index + b0, 0, n)
            xb = x if in_place else x0
            tb = tg if targets != NULL else NULL
            lb = p.labels if labels != NULL else NULL
            wb = wt if weights != NULL else NULL
        # -- forward, loss (on the logits when the model fuses them), model output
        _forward(p, <floating *>xb, rows, n, uniforms, offsets)
        y_out = <floating *>last.out
        # the model's softmax output for the metrics comes out of the loss, which
        # computes the exponentials anyway (a second softmax pass cost more)
        probs = NULL
        if pred_out != NULL and probs_from_loss:
            probs = pred_out + (b0 - start) * n_out
        value = loss_rows(p.loss_code, y_out, tb, lb, wb, grad, n, n_out, p.from_logits,
                          p.loss_param, _threads(p, <double>n * n_out * _TRANSCENDENTAL_COST),
                          probs)
        if pred_out != NULL and not probs_from_loss:
            if p.logits_fused:
                # y_pred = act(z), as Sequential computes it for the metrics
                if p.out_code == FNN_ACT_SOFTMAX or p.out_code == FNN_ACT_LOG_SOFTMAX:
                    softmax_rows(y_out, pred_out + (b0 - start) * n_out, n, n_out,
                                 p.out_code == FNN_ACT_LOG_SOFTMAX, 1)
                else:
                    act_forward(p.out_code, <floating>p.out_param, y_out,
                                pred_out + (b0 - start) * n_out, n * n_out, 1)
            else:
                memcpy(pred_out + (b0 - start) * n_out, y_out, n * n_out * sizeof(floating))
        # -- the next batch's rows are scattered over x: ask for them now, so that they
        # -- arrive while backward runs instead of stalling the next gather
        if index != NULL and not in_place and b0 + n < stop:
            _prefetch_rows(x, index + b0 + n, min(p.batch_size, stop - b0 - n), n_in)
        # -- backward (on a copy of rows read in place: see in_place), penalties (at
        # -- the weights the gradients were taken at), update
        if rows != NULL and p.nodes[0].grad_kernel != NULL:   # (a frozen one never reads x)
            _gather_rows(x, rows, n, n_in, x0, _threads(p, <double>n * n_in * _COPY_COST))
            xb = x0
        _backward(p, <floating *>xb, n, grad)
        if p.any_regularized:
            value = value + _penalties(p, dummy)
        _regularize_and_clip(p, dummy)
        _update_all(p, dummy, lrs[s], step0 + s + 1)
        loss_sum[0] += value * <double>n
        s += 1
        b0 += n
        if p.stop_nonfinite and not isfinite(loss_sum[0]):
            break
    return s


# ---------------------------------------------------------------------------
# A chunk of training steps by a team of threads
# ---------------------------------------------------------------------------
#
# At batch 32 a step of the seed MLP is some 150 us of work cut into a dozen
# kernels. Run as above, each parallel kernel opens and joins its own region
# (about 1.5 us each here), the small layers' kernels run on one thread while
# the other waits, and a late-starting worker leaves most of a shared product to
# the caller: perf put the worker idle 40% of the time. The team step instead
# opens one region per chunk and splits every step in two halves that need no
# communication inside:
#
#   rows:     each thread takes its own rows of the batch through the whole
#             forward pass, the loss and the backward pass down to each Dense
#             layer's dz (rows are independent there: a row of the batch never
#             reads another row)
#   barrier
#   weights:  each thread computes its own rows of every weight gradient
#             (dW = x^T dz reads every row of the batch) and its own columns of
#             every bias gradient, and clips and updates each of those
#             parameters right after (the optimizers are element-wise)
#   barrier   (the next forward reads every weight)
#
# Every piece is computed by the very arithmetic of the serial step: the GEMM
# computes a part of a product bit-identically to the whole (gemm_part), the
# element-wise and row-wise kernels do not depend on where a range starts, the
# bias gradient adds each column row by row, and the loss is added from the rows'
# values in loss_rows' order. So the team's weights equal the serial step's bit
# for bit, for any number of threads (tests/test_backends_fused.py).
#
# It applies without penalties and without norm clipping (both reduce over all
# parameters between backward and update); the serial step runs those.

cdef inline void _share(Py_ssize_t count, int tid, int nt, Py_ssize_t *lo,
                        Py_ssize_t *hi) noexcept nogil:
    """Thread tid's contiguous share [lo, hi) of 0..count."""
    lo[0] = count * tid // nt
    hi[0] = count * (tid + 1) // nt


cdef void _team_forward(const Plan *p, const floating *x0, const int64_t *rows, Py_ssize_t n,
                        Py_ssize_t r0, Py_ssize_t r1, const double **uniforms,
                        Py_ssize_t *offsets) noexcept nogil:
    """_forward for rows r0:r1 of the batch of n rows."""
    cdef int i
    cdef Py_ssize_t off, size
    cdef Node *nd
    cdef const floating *src = x0
    cdef floating *dst
    for i in range(p.n_nodes):
        nd = &p.nodes[i]
        dst = <floating *>nd.out
        off = r0 * nd.n_out
        size = (r1 - r0) * nd.n_out
        if nd.kind == _NODE_DENSE:
            gemm_part(False, False, n, nd.n_out, nd.n_in, <floating>1, src, nd.n_in,
                      rows if i == 0 else NULL, <floating *>nd.kernel, nd.n_out, <floating>0, dst,
                      nd.n_out, <floating *>nd.bias, nd.code, <floating>nd.param,
                      <floating *>nd.preact, r0, r1)
            if nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
                softmax_rows(dst + off, dst + off, r1 - r0, nd.n_out,
                             nd.code == FNN_ACT_LOG_SOFTMAX, 1)
        elif nd.kind == _NODE_ACTIVATION:
            if nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
                softmax_rows(src + off, dst + off, r1 - r0, nd.n_out,
                             nd.code == FNN_ACT_LOG_SOFTMAX, 1)
            else:
                act_forward(nd.code, <floating>nd.param, src + off, dst + off, size, 1)
        else:
            _dropout_forward(nd, src, dst, uniforms[nd.stream] + offsets[nd.stream], off,
                             off + size)
            offsets[nd.stream] += n * nd.n_out
        src = dst


cdef void _team_backward_rows(const Plan *p, const floating *x0, Py_ssize_t n, Py_ssize_t r0,
                              Py_ssize_t r1) noexcept nogil:
    """_backward's input gradients for rows r0:r1: from the last node's ``gout``
    (the loss gradient) down, each Dense node's dz left in place in its ``gout``
    for _team_weights."""
    cdef int i
    cdef Py_ssize_t j, off, size
    cdef Node *nd
    cdef const floating *inp
    cdef floating *g
    cdef floating *below
    cdef floating *mask
    for i in range(p.n_nodes - 1, -1, -1):
        nd = &p.nodes[i]
        if not nd.needs_input_grad and nd.grad_kernel == NULL:
            return
        off = r0 * nd.n_out
        size = (r1 - r0) * nd.n_out
        g = <floating *>nd.gout
        below = <floating *>p.nodes[i - 1].gout if i > 0 else NULL
        inp = <const floating *>p.nodes[i - 1].out if i > 0 else x0
        if nd.kind == _NODE_DENSE:
            # dz over the gradient in place, as dz_and_bias_grad computes it
            if nd.bwd_code == FNN_ACT_SOFTMAX or nd.bwd_code == FNN_ACT_LOG_SOFTMAX:
                softmax_backward_rows(g + off, <floating *>nd.out + off, g + off, r1 - r0,
                                      nd.n_out, nd.bwd_code == FNN_ACT_LOG_SOFTMAX, 1)
            elif nd.bwd_code != FNN_ACT_LINEAR:
                act_backward(nd.bwd_code, <floating>nd.param, g + off,
                             (<floating *>nd.preact + off) if nd.preact != NULL else NULL,
                             <floating *>nd.out + off, g + off, size, 1)
            if nd.needs_input_grad and below != NULL:
                gemm_part(False, True, n, nd.n_in, nd.n_out, <floating>1, g, nd.n_out, NULL,
                          <floating *>nd.kernel, nd.n_out, <floating>0, below, nd.n_in, NULL,
                          FNN_ACT_LINEAR, <floating>0, NULL, r0, r1)
        elif below != NULL:
            if nd.kind == _NODE_ACTIVATION:
                if nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
                    softmax_backward_rows(g + off, <floating *>nd.out + off, below + off, r1 - r0,
                                          nd.n_out, nd.code == FNN_ACT_LOG_SOFTMAX, 1)
                else:
                    act_backward(nd.code, <floating>nd.param, g + off, inp + off,
                                 <floating *>nd.out + off, below + off, size, 1)
            else:
                mask = <floating *>nd.mask
                for j in range(off, off + size):
                    below[j] = g[j] * mask[j]
        if not nd.needs_input_grad:
            return


cdef inline void _team_update_slice(const Plan *p, floating *dummy, int param, Py_ssize_t start,
                                   Py_ssize_t n, double lr, long step) noexcept nogil:
    """Value clipping and the optimizer update of params[param][start:start + n]."""
    cdef Param *q
    if param < 0 or n <= 0:
        return
    q = &p.params[param]
    if p.clip_kind == _CLIP_VALUE:
        clip_values(<floating *>q.grad + start, <floating>-p.clip_value,
                    <floating>p.clip_value, n, 1)
    _update_piece(p, dummy, q, start, n, lr, step)


cdef void _team_weights(const Plan *p, floating *dummy, const floating *x0, Py_ssize_t n,
                        double lr, long step, int tid, int nt) noexcept nogil:
    """Thread tid's rows of every weight gradient (x^T dz) and columns of every
    bias gradient, from the dz rows of the whole team, each updated by the
    optimizer as soon as it is computed (while it is in cache; no other thread
    reads or writes those parameters until the next step)."""
    cdef int i
    cdef Py_ssize_t lo, hi
    cdef Node *nd
    cdef const floating *inp
    for i in range(p.n_nodes - 1, -1, -1):
        nd = &p.nodes[i]
        if not nd.needs_input_grad and nd.grad_kernel == NULL:
            return
        if nd.kind == _NODE_DENSE:
            inp = <const floating *>p.nodes[i - 1].out if i > 0 else x0
            if nd.grad_kernel != NULL:
                _share(nd.n_in, tid, nt, &lo, &hi)
                gemm_part(True, False, nd.n_in, nd.n_out, n, <floating>1, inp, nd.n_in, NULL,
                          <floating *>nd.gout, nd.n_out, <floating>0, <floating *>nd.grad_kernel,
                          nd.n_out, NULL, FNN_ACT_LINEAR, <floating>0, NULL, lo, hi)
                _team_update_slice(p, dummy, nd.kernel_param, lo * nd.n_out, (hi - lo) * nd.n_out,
                                   lr, step)
            if nd.grad_bias != NULL:
                _share(nd.n_out, tid, nt, &lo, &hi)
                bias_grad_part(<floating *>nd.gout, <floating *>nd.grad_bias, n, nd.n_out, lo, hi)
                _team_update_slice(p, dummy, nd.bias_param, lo, hi - lo, lr, step)
        if not nd.needs_input_grad:
            return


cdef void _team_chunk(const Plan *p, floating *dummy,
                      const floating *x, const floating *targets, const int64_t *labels,
                      const floating *weights, const int64_t *index,
                      Py_ssize_t start, Py_ssize_t stop,
                      const double *lrs, long step0,
                      const double **uniforms, const Py_ssize_t *offsets0,
                      floating *pred_out, double *loss_sum, Py_ssize_t *done) noexcept nogil:
    """_train_chunk for one thread of the team; every thread of the region runs it.
    Thread 0 writes the number of steps done to ``done``."""
    cdef int tid = fnn_fused_thread_num(), nt = fnn_fused_num_threads()
    cdef Py_ssize_t b0, n, i, r0, r1, s = 0
    cdef Py_ssize_t n_in = p.n_in, n_out = p.n_out
    cdef Py_ssize_t offsets[16]
    cdef floating *x0 = <floating *>p.x0
    cdef floating *tg = <floating *>p.targets
    cdef floating *wt = <floating *>p.weights
    cdef Node *last = &p.nodes[p.n_nodes - 1]
    cdef bint dense_first = index != NULL and p.nodes[0].kind == _NODE_DENSE
    cdef bint in_place
    cdef bint probs_from_loss = (p.logits_fused and p.from_logits
                                 and p.out_code == FNN_ACT_SOFTMAX
                                 and (p.loss_code == LOSS_CCE or p.loss_code == LOSS_SPARSE_CCE))
    cdef const floating *xb
    cdef const int64_t *rows
    cdef const floating *tb
    cdef const int64_t *lb
    cdef const floating *wb
    cdef const floating *y_out = <floating *>last.out
    cdef floating *pred
    for i in range(16):
        offsets[i] = offsets0[i]
    b0 = start
    while b0 < stop:
        n = min(p.batch_size, stop - b0)
        _share(n, tid, nt, &r0, &r1)
        # -- this thread's rows of the batch (see _train_chunk for in_place)
        rows = NULL
        if index == NULL:
            xb = x + b0 * n_in
            tb = (targets + b0 * n_out) if targets != NULL else NULL
            lb = (labels + b0) if labels != NULL else NULL
            wb = (weights + b0) if weights != NULL else NULL
        else:
            in_place = dense_first and gemm_rows_in_place(dummy, False, False, n,
                                                          p.nodes[0].n_out, n_in)
            if in_place:
                rows = index + b0
                xb = x
            else:
                _gather_rows(x, index + b0 + r0, r1 - r0, n_in, x0 + r0 * n_in, 1)
                xb = x0
            _gather_targets(p, targets, labels, weights, index + b0, r0, r1)
            tb = tg if targets != NULL else NULL
            lb = p.labels if labels != NULL else NULL
            wb = wt if weights != NULL else NULL
        # -- rows: forward, loss, outputs for the metrics, backward down to every dz
        _team_forward(p, xb, rows, n, r0, r1, uniforms, offsets)
        pred = (pred_out + (b0 - start) * n_out) if pred_out != NULL else NULL
        loss_rows_part(p.loss_code, y_out, tb, lb, wb, <floating *>last.gout, r0, r1, n, n_out,
                       p.from_logits, p.loss_param,
                       pred if probs_from_loss else NULL, p.row_loss)
        if pred != NULL and not probs_from_loss:
            if p.logits_fused:
                if p.out_code == FNN_ACT_SOFTMAX or p.out_code == FNN_ACT_LOG_SOFTMAX:
                    softmax_rows(y_out + r0 * n_out, pred + r0 * n_out, r1 - r0, n_out,
                                 p.out_code == FNN_ACT_LOG_SOFTMAX, 1)
                else:
                    act_forward(p.out_code, <floating>p.out_param, y_out + r0 * n_out,
                                pred + r0 * n_out, (r1 - r0) * n_out, 1)
            elif r1 > r0:
                memcpy(pred + r0 * n_out, y_out + r0 * n_out, (r1 - r0) * n_out * sizeof(floating))
        if rows != NULL and p.nodes[0].grad_kernel != NULL:
            # the weight gradient reads a copy of rows read in place (see _train_chunk)
            _gather_rows(x, rows + r0, r1 - r0, n_in, x0 + r0 * n_in, 1)
            xb = x0
        _team_backward_rows(p, xb, n, r0, r1)
        fnn_fused_barrier()
        # -- weights: gradients, then (after every gradient is whole) the update
        if tid == 0:
            loss_sum[0] += loss_rows_total(p.row_loss, n, n_out) * <double>n
        _team_weights(p, dummy, xb, n, lrs[s], step0 + s + 1, tid, nt)
        fnn_fused_barrier()
        s += 1
        b0 += n
        # every thread reads the sum thread 0 wrote before the barrier: all stop together
        if p.stop_nonfinite and not isfinite(loss_sum[0]):
            break
    if tid == 0:
        done[0] = s


# ---------------------------------------------------------------------------
# The Python-facing plan objects
# ---------------------------------------------------------------------------

# The team splits every product by rows of the batch, so each thread reads every
# weight matrix whole, where the per-kernel path splits the large products by
# columns (each thread reads half of W). That costs nothing while a layer's
# weights fit a core's L2 and doubles the memory traffic when they do not.
# Alternating epochs on 2 threads, team against per-kernel: 784-64-64-10 at batch
# 32 0.19-0.24 s against 0.25-0.29 s, at 256 median 0.189 s against 0.208, at
# 1024 0.070 against 0.075; 784-256-256-10 (800 KB) at 128 0.212 against 0.235;
# 784-1024-1024-10 (4 MB) at 256 1.151 against 1.046 (the team 10% slower).
cdef Py_ssize_t _TEAM_MAX_KERNEL_BYTES = 1 << 20


cdef inline bint _uses_team(const Plan *p) noexcept nogil:
    if p.team < 0 or not p.team_applies:
        return False
    if p.team > 0:
        return True
    return (p.max_threads > 1 and p.step_work >= p.parallel_threshold
            and p.max_kernel_bytes <= _TEAM_MAX_KERNEL_BYTES)


cdef inline object _check_array(object a, object dtype, str name, bint writable=False):
    """``a`` itself if it is a C-contiguous aligned ndarray of ``dtype``, else TypeError.

    The plan keeps raw pointers to these arrays, so they are never copied here."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if arr.dtype != dtype or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        raise TypeError(f"{name} must be a C-contiguous aligned {np.dtype(dtype).name} array, "
                        f"got {arr.dtype} (contiguous: {bool(cnp.PyArray_IS_C_CONTIGUOUS(arr))})")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} must be writeable (it is updated in place)")
    return a


cdef class Trainer:
    """A compiled plan of training steps for one model, dtype and batch size.

    Built by :mod:`fastnn.backends.fused` (which documents the fields); holds
    references to every array it points into, so they stay alive.

    Parameters
    ----------
    dtype : numpy dtype
        float32 or float64: the dtype of every array.
    batch_size : int
    n_in, n_out : int
        Features per input sample and per output sample.
    nodes : list of dict
        Forward order. Keys: ``kind`` (NODE_*), ``n_in``, ``n_out``, ``code``,
        ``bwd_code``, ``param``, ``keep_preact``, ``needs_input_grad``; Dense:
        ``kernel``, ``bias``, ``grad_kernel``, ``grad_bias`` (arrays or None);
        Dropout: ``rate``, ``stream``.
    params : list of dict
        Optimizer order. Keys: ``value``, ``grad``, ``state`` (list of up to 3
        arrays or None), ``l1``, ``l2``, ``regularized``, ``layer``.
    loss : dict
        ``code``, ``from_logits``, ``param``, ``sparse``, ``logits_fused``,
        ``out_code``, ``out_param``.
    optimizer : dict
        ``code`` (OPT_*), ``h`` (4 floats), ``flags`` (2 bools),
        ``weight_decay``, ``decoupled``, ``clip_kind`` (CLIP_*), ``clip_value``.
    max_threads, parallel_threshold : int
    """

    cdef Plan plan
    cdef object dtype
    cdef list _keep
    cdef readonly int n_streams
    cdef bint _double

    def __cinit__(self):
        self.plan.nodes = NULL
        self.plan.params = NULL
        self.plan.task_param = NULL
        self.plan.task_start = NULL
        self.plan.task_len = NULL

    def __dealloc__(self):
        free(self.plan.nodes)
        free(self.plan.params)
        free(self.plan.task_param)
        free(self.plan.task_start)
        free(self.plan.task_len)

    def __init__(self, dtype, Py_ssize_t batch_size, Py_ssize_t n_in, Py_ssize_t n_out,
                 list nodes, list params, dict loss, dict optimizer, int max_threads=1,
                 Py_ssize_t parallel_threshold=65536):
        cdef Plan *p = &self.plan
        cdef Node *nd
        cdef Param *q
        cdef int i, j, attached
        cdef Py_ssize_t t, width = n_in, piece
        dtype = np.dtype(dtype)
        if dtype != np.float32 and dtype != np.float64:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if batch_size < 1 or n_in < 1 or n_out < 1 or not nodes:
            raise ValueError("batch_size, n_in, n_out must be >= 1 and nodes non-empty")
        self.dtype = dtype
        self._double = dtype == np.float64
        self._keep = []
        p.batch_size, p.n_in, p.n_out = batch_size, n_in, n_out
        p.max_threads = max(1, max_threads)
        p.parallel_threshold = parallel_threshold

        # -- nodes and their workspaces
        p.n_nodes = len(nodes)
        p.nodes = <Node *>calloc(p.n_nodes, sizeof(Node))
        if p.nodes == NULL:
            raise MemoryError()
        self.n_streams = 0
        for i, spec in enumerate(nodes):
            nd = &p.nodes[i]
            nd.kind = spec["kind"]
            nd.n_in, nd.n_out = spec["n_in"], spec["n_out"]
            if nd.n_in != width:
                raise ValueError(f"nodes[{i}] takes {nd.n_in} inputs, the previous node gives {width}")
            width = nd.n_out
            nd.code = spec.get("code", FNN_ACT_LINEAR)
            nd.bwd_code = spec.get("bwd_code", nd.code)
            nd.param = spec.get("param", 0.0)
            nd.needs_input_grad = spec.get("needs_input_grad", True)
            nd.out = self._workspace((batch_size, nd.n_out))
            nd.gout = self._workspace((batch_size, nd.n_out))
            if nd.kind == _NODE_DENSE:
                nd.kernel = self._param_array(spec["kernel"], (nd.n_in, nd.n_out), "kernel")
                nd.bias = self._param_array(spec.get("bias"), (nd.n_out,), "bias")
                nd.grad_kernel = self._param_array(spec.get("grad_kernel"), (nd.n_in, nd.n_out),
                                                   "grad_kernel", True)
                nd.grad_bias = self._param_array(spec.get("grad_bias"), (nd.n_out,), "grad_bias", True)
                if spec.get("keep_preact", False):
                    nd.preact = self._workspace((batch_size, nd.n_out))
            elif nd.kind == _NODE_ACTIVATION:
                if nd.n_in != nd.n_out:
                    raise ValueError(f"nodes[{i}]: an activation keeps the width")
            elif nd.kind == _NODE_DROPOUT:
                if nd.n_in != nd.n_out:
                    raise ValueError(f"nodes[{i}]: dropout keeps the width")
                nd.rate = spec["rate"]
                nd.keep_scale = 1.0 / (1.0 - nd.rate)
                nd.stream = spec["stream"]
                self.n_streams = max(self.n_streams, nd.stream + 1)
                nd.mask = self._workspace((batch_size, nd.n_out))
            else:
                raise ValueError(f"nodes[{i}]: unknown kind {nd.kind}")
        if width != n_out:
            raise ValueError(f"the last node gives {width} outputs, n_out is {n_out}")
        max_width = max([n_in] + [spec["n_out"] for spec in nodes])
        p.x0 = self._workspace((batch_size, n_in))   # the gathered batch, when one is needed
        p.g0 = self._workspace((batch_size, max_width))
        p.g1 = self._workspace((batch_size, max_width))
        p.targets = self._workspace((batch_size, n_out))
        p.weights = self._workspace((batch_size,))
        labels = np.empty(batch_size, np.int64)
        self._keep.append(labels)
        p.labels = <int64_t *>_data(labels)
        row_loss = np.zeros(batch_size, np.float64)
        self._keep.append(row_loss)
        p.row_loss = <double *>_data(row_loss)
        p.step_work = 0.0
        p.max_kernel_bytes = 0
        for spec in nodes:
            if spec["kind"] == _NODE_DENSE:
                p.step_work += 3.0 * batch_size * spec["n_in"] * spec["n_out"]
                p.max_kernel_bytes = max(p.max_kernel_bytes,
                                         spec["n_in"] * spec["n_out"] * dtype.itemsize)

        # -- parameters, optimizer state, penalties
        p.n_params = len(params)
        p.params = <Param *>calloc(max(1, p.n_params), sizeof(Param))
        if p.params == NULL:
            raise MemoryError()
        p.any_regularized = False
        for i, spec in enumerate(params):
            q = &p.params[i]
            value = spec["value"]
            q.value = self._param_array(value, value.shape, f"params[{i}]", True)
            q.grad = self._param_array(spec["grad"], value.shape, f"grads[{i}]", True)
            q.size = value.size
            state = list(spec.get("state") or []) + [None, None, None]
            q.s0 = self._param_array(state[0], value.shape, f"state[{i}][0]", True)
            q.s1 = self._param_array(state[1], value.shape, f"state[{i}][1]", True)
            q.s2 = self._param_array(state[2], value.shape, f"state[{i}][2]", True)
            q.regularized = spec.get("regularized", False)
            q.l1, q.l2 = spec.get("l1", 0.0), spec.get("l2", 0.0)
            q.layer = spec.get("layer", i)
            p.any_regularized = p.any_regularized or q.regularized
        # the team step updates each parameter with its Dense node's gradients
        attached = 0
        for j in range(p.n_nodes):
            nd = &p.nodes[j]
            nd.kernel_param = nd.bias_param = -1
            for i in range(p.n_params):
                if nd.grad_kernel != NULL and p.params[i].grad == nd.grad_kernel:
                    nd.kernel_param = i
                    attached += 1
                elif nd.grad_bias != NULL and p.params[i].grad == nd.grad_bias:
                    nd.bias_param = i
                    attached += 1
        # fixed pieces of CHUNK elements (the kernels' own piece size)
        p.n_tasks = 0
        for i in range(p.n_params):
            p.n_tasks += (p.params[i].size + CHUNK - 1) // CHUNK
        p.task_param = <int *>calloc(max(1, p.n_tasks), sizeof(int))
        p.task_start = <Py_ssize_t *>calloc(max(1, p.n_tasks), sizeof(Py_ssize_t))
        p.task_len = <Py_ssize_t *>calloc(max(1, p.n_tasks), sizeof(Py_ssize_t))
        if p.task_param == NULL or p.task_start == NULL or p.task_len == NULL:
            raise MemoryError()
        t = 0
        for i in range(p.n_params):
            piece = 0
            while piece < p.params[i].size:
                p.task_param[t] = i
                p.task_start[t] = piece
                p.task_len[t] = min(<Py_ssize_t>CHUNK, p.params[i].size - piece)
                piece += CHUNK
                t += 1

        # -- loss and output
        p.loss_code = loss["code"]
        if p.loss_code < LOSS_MSE or p.loss_code > LOSS_SPARSE_CCE:
            raise ValueError(f"unknown loss code {p.loss_code}")
        p.from_logits = loss["from_logits"]
        p.loss_param = loss.get("param", 1.0)
        p.sparse = p.loss_code == LOSS_SPARSE_CCE
        p.logits_fused = loss.get("logits_fused", False)
        p.out_code = loss.get("out_code", FNN_ACT_LINEAR)
        p.out_param = loss.get("out_param", 0.0)

        # -- optimizer
        p.opt = optimizer["code"]
        if p.opt < _OPT_SGD or p.opt > _OPT_ADAGRAD:
            raise ValueError(f"unknown optimizer code {p.opt}")
        h = list(optimizer.get("h", ())) + [0.0, 0.0, 0.0, 0.0]
        p.h0, p.h1, p.h2, p.h3 = h[0], h[1], h[2], h[3]
        flags = list(optimizer.get("flags", ())) + [False, False]
        p.flag0, p.flag1 = flags[0], flags[1]
        p.weight_decay = optimizer.get("weight_decay", 0.0)
        p.decoupled = optimizer.get("decoupled", False)
        p.clip_kind = optimizer.get("clip_kind", _CLIP_NONE)
        p.clip_value = optimizer.get("clip_value", 0.0)
        # every state array the update reads, present: a missing one would be a NULL
        # read in the update kernel
        needed = {_OPT_SGD: (p.h0 > 0, False, False),
                  _OPT_ADAM: (True, True, bool(p.flag0)),
                  _OPT_RMSPROP: (True, p.h2 > 0, bool(p.flag0)),
                  _OPT_ADAGRAD: (True, False, False)}[p.opt]
        for i in range(p.n_params):
            q = &p.params[i]
            for k, (need, have) in enumerate(zip(needed, (q.s0 != NULL, q.s1 != NULL,
                                                          q.s2 != NULL))):
                if need and not have:
                    raise ValueError(f"params[{i}]: the optimizer's settings need state "
                                     f"array {k}, which is missing")
        p.team_applies = (not p.any_regularized and attached == p.n_params
                          and (p.clip_kind == _CLIP_NONE or p.clip_kind == _CLIP_VALUE))
        p.team = 0

    cdef char *_workspace(self, shape) except? NULL:
        # zeroed and 64-byte aligned: the GEMM reads an aligned B (the gradient
        # dz of a layer, in dW = x^T dz) in place instead of packing it
        cdef Py_ssize_t nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize
        raw = np.zeros(nbytes + 64, np.uint8)
        cdef Py_ssize_t start = (64 - <Py_ssize_t>(<size_t>_data(raw) % 64)) % 64
        arr = raw[start:start + nbytes]
        self._keep.append(arr)
        return _data(arr)

    cdef char *_param_array(self, a, shape, str name, bint writable=False) except? NULL:
        if a is None:
            return NULL
        _check_array(a, self.dtype, name, writable)
        if (<cnp.ndarray>a).size != np.prod(shape, dtype=np.int64):
            raise ValueError(f"{name} has shape {a.shape}, expected {tuple(shape)}")
        self._keep.append(a)
        return _data(a)

    @property
    def max_threads(self):
        """Threads the next chunks may use."""
        return self.plan.max_threads

    def set_threads(self, int max_threads, Py_ssize_t parallel_threshold):
        """Thread budget for the next chunks (results do not depend on it)."""
        self.plan.max_threads = max(1, max_threads)
        self.plan.parallel_threshold = parallel_threshold

    def set_team(self, team):
        """How chunks run (results do not depend on it): None by one team of
        threads (see ``_team_chunk``) where that pays, True wherever it applies
        (on one thread too: for tests), False never."""
        self.plan.team = 0 if team is None else (1 if team else -1)

    @property
    def uses_team(self):
        """Whether the next chunk runs as a team (see ``set_threads``)."""
        return _uses_team(&self.plan)

    def run(self, x, targets, weights, index, Py_ssize_t start, Py_ssize_t stop, lrs,
            long step0, list uniforms, pred_out, double loss_sum, bint stop_nonfinite=False):
        """Train on the batches of [start, stop) of the epoch's order.

        Parameters
        ----------
        x : ndarray (samples, n_in)
        targets : ndarray (samples,) int64 labels (sparse loss) or (samples, n_out) floats
        weights : ndarray (samples,) or None
        index : int64 ndarray (samples,) or None
            The epoch's order (None: 0, 1, 2, ...); must hold valid row numbers.
        start, stop : int
            Positions in the order; batches start at start, start + batch_size, ...
        lrs : float64 ndarray, one learning rate per step of the chunk
        step0 : int
            Optimizer steps done before the chunk (the first update is step0 + 1).
        uniforms : list of float64 ndarrays
            One stream per dropout generator, each the uniforms of the whole
            chunk in the order the per-op path draws them.
        pred_out : ndarray (stop - start, n_out) or None
            Receives the model output of every row (for the metrics).
        loss_sum : float
            Running sum of (loss + penalties) * batch size; returned updated.
        stop_nonfinite : bool
            Stop after the step that leaves the loss sum NaN or infinite.

        Returns
        -------
        (float, int)
            The updated loss sum and the number of steps done.
        """
        cdef Plan *p = &self.plan
        cdef Py_ssize_t n_rows, steps, i, k
        _check_array(x, self.dtype, "x")
        n_rows = (<cnp.ndarray>x).shape[0]
        if (<cnp.ndarray>x).size != n_rows * p.n_in:
            raise ValueError(f"x must have {p.n_in} features per sample, got shape {x.shape}")
        if start < 0 or stop < start:
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        if index is None:
            if stop > n_rows:
                raise ValueError(f"stop={stop} is beyond the {n_rows} samples")
        else:
            _check_array(index, np.int64, "index")
            if stop > (<cnp.ndarray>index).shape[0]:
                raise ValueError(f"stop={stop} is beyond the index of {index.shape[0]} entries")
        if p.sparse:
            _check_array(targets, np.int64, "targets")
            if (<cnp.ndarray>targets).size != n_rows:
                raise ValueError(f"targets must hold {n_rows} labels")
        else:
            _check_array(targets, self.dtype, "targets")
            if (<cnp.ndarray>targets).size != n_rows * p.n_out:
                raise ValueError(f"targets must have shape ({n_rows}, {p.n_out})")
        if weights is not None:
            _check_array(weights, self.dtype, "weights")
            if (<cnp.ndarray>weights).size != n_rows:
                raise ValueError(f"weights must hold {n_rows} values")
        steps = (stop - start + p.batch_size - 1) // p.batch_size
        _check_array(lrs, np.float64, "lrs")
        if (<cnp.ndarray>lrs).size < steps:
            raise ValueError(f"lrs must hold one learning rate per step ({steps})")
        if pred_out is not None:
            _check_array(pred_out, self.dtype, "pred_out", True)
            if (<cnp.ndarray>pred_out).size != (stop - start) * p.n_out:
                raise ValueError(f"pred_out must have shape ({stop - start}, {p.n_out})")
        if len(uniforms) < self.n_streams:
            raise ValueError(f"need {self.n_streams} streams of uniforms")
        # each dropout stream must cover its draws
        cdef const double *streams[16]
        cdef Py_ssize_t offsets[16]
        cdef Py_ssize_t need[16]
        if self.n_streams > 16:
            raise ValueError("at most 16 dropout generators are supported")
        for k in range(16):
            offsets[k] = 0
            need[k] = 0
            streams[k] = NULL
        for i in range(p.n_nodes):
            if p.nodes[i].kind == _NODE_DROPOUT:
                need[p.nodes[i].stream] += (stop - start) * p.nodes[i].n_out
        for k in range(self.n_streams):
            _check_array(uniforms[k], np.float64, f"uniforms[{k}]")
            if (<cnp.ndarray>uniforms[k]).size < need[k]:
                raise ValueError(f"uniforms[{k}] holds {uniforms[k].size} values, the chunk needs {need[k]}")
            streams[k] = <const double *>_data(uniforms[k])

        cdef char *px = _data(x)
        cdef char *pt = NULL if p.sparse else _data(targets)
        cdef int64_t *pl = <int64_t *>_data(targets) if p.sparse else NULL
        cdef char *pw = _data(weights)
        cdef int64_t *pi = <int64_t *>_data(index)
        cdef double *plr = <double *>_data(lrs)
        cdef char *pp = _data(pred_out)
        cdef double total = loss_sum
        cdef Py_ssize_t done = 0
        p.stop_nonfinite = stop_nonfinite
        if pi != NULL and stop > start:
            lo = index[start:stop].min()
            hi = index[start:stop].max()
            if lo < 0 or hi >= n_rows:
                raise ValueError(f"index holds row {lo if lo < 0 else hi}, x has {n_rows} rows")
        if _uses_team(p):
            with nogil, parallel(num_threads=p.max_threads):
                if self._double:
                    _team_chunk(p, <double *>NULL, <double *>px, <double *>pt, pl, <double *>pw,
                                pi, start, stop, plr, step0, streams, offsets, <double *>pp, &total,
                                &done)
                else:
                    _team_chunk(p, <float *>NULL, <float *>px, <float *>pt, pl, <float *>pw,
                                pi, start, stop, plr, step0, streams, offsets, <float *>pp, &total,
                                &done)
            return total, done
        with nogil:
            if self._double:
                done = _train_chunk(p, <double *>NULL, <double *>px, n_rows, <double *>pt, pl,
                                    <double *>pw, pi, start, stop, plr, step0, streams, offsets,
                                    <double *>pp, &total)
            else:
                done = _train_chunk(p, <float *>NULL, <float *>px, n_rows, <float *>pt, pl,
                                    <float *>pw, pi, start, stop, plr, step0, streams, offsets,
                                    <float *>pp, &total)
        return total, done


# ---------------------------------------------------------------------------
# Inference: the whole Dense / Activation stack in one call
# ---------------------------------------------------------------------------

cdef struct PNode:
    int kind              # _NODE_DENSE or _NODE_ACTIVATION
    Py_ssize_t n_in, n_out
    int code
    double param
    char *kernel
    char *bias


cdef bint _predict_rows(const PNode *nodes, int n_nodes, floating *x, Py_ssize_t n,
                        floating *buf0, floating *buf1, floating *out, int gemm_threads,
                        int elem_threads, bint check_finite) noexcept nogil:
    """The stack's output for n rows of x into out; buf0/buf1 hold (n, max width) each.

    With ``check_finite``, returns False if x holds a NaN or an infinity (the
    outputs are then meaningless). A first Dense layer tests its pre-activations
    instead of x: a non-finite input makes every x @ W + b of its row NaN or
    infinite (NaN * w and inf * 0 are NaN; inf + anything finite or -inf stays
    non-finite), and they are 1/12 of x for the seed's 784 -> 64 layer and still
    in L1. Only if one is not finite is x itself read again, to tell a bad input
    from an overflow of finite ones (which, as before, is not an error).
    """
    cdef int i
    cdef const floating *src = x
    cdef floating *dst
    cdef floating *preact
    cdef const PNode *nd
    cdef bint finite = True
    if check_finite and nodes[0].kind != _NODE_DENSE:
        finite = all_finite_values(x, n * nodes[0].n_in)
    for i in range(n_nodes):
        nd = &nodes[i]
        if i == n_nodes - 1:
            dst = out
        else:
            dst = buf0 if src != buf0 else buf1
        if nd.kind == _NODE_DENSE:
            # node 0 writes buf0 (or out), so buf1 is free to hold its pre-activations
            preact = buf1 if (check_finite and i == 0) else NULL
            dense_forward(src, nd.n_in, False, NULL, <floating *>nd.kernel, nd.n_out, False,
                          <floating *>nd.bias, nd.code, <floating>nd.param, dst, preact,
                          n, nd.n_in, nd.n_out, gemm_threads)
            if preact != NULL and not all_finite_values(preact, n * nd.n_out):
                finite = all_finite_values(x, n * nd.n_in)
        elif nd.code == FNN_ACT_SOFTMAX or nd.code == FNN_ACT_LOG_SOFTMAX:
            softmax_rows(src, dst, n, nd.n_out, nd.code == FNN_ACT_LOG_SOFTMAX, elem_threads)
        else:
            act_forward(nd.code, <floating>nd.param, src, dst, n * nd.n_out, elem_threads)
        src = dst
    return finite


cdef bint _predict_blocks(const PNode *nodes, int n_nodes, floating *x, Py_ssize_t n,
                          Py_ssize_t n_in, Py_ssize_t n_out, floating *work,
                          Py_ssize_t block, Py_ssize_t width, floating *out,
                          int threads, bint check_finite) noexcept nogil:
    """Blocks of ``block`` rows, one whole stack per block, blocks shared by threads.

    With ``check_finite``, each block is tested as it runs (see _predict_rows)
    instead of in a separate pass over the whole input; returns False if any
    value is not finite (the outputs are then meaningless).

    Blocks are handed out one at a time (dynamic schedule), not split in
    advance: when a burst of load slows one core, the other takes more blocks
    instead of waiting at the end for its slower half (10,000 rows, 300
    alternating calls, three runs: mean 9.1-9.5 -> 8.7-9.0 ms). Which thread
    computes a block does not change its values.
    """
    cdef Py_ssize_t b, r0, rows, nb = (n + block - 1) // block
    cdef floating *ws
    cdef int bad = 0
    for b in prange(nb, num_threads=threads, schedule='dynamic', chunksize=1):
        r0 = b * block
        rows = min(block, n - r0)
        # two private (block, width) buffers per thread
        ws = work + fnn_fused_thread_num() * 2 * block * width
        if not _predict_rows(nodes, n_nodes, x + r0 * n_in, rows, ws, ws + block * width,
                             out + r0 * n_out, 1, 1, check_finite):
            bad |= 1
    return not bad


cdef class Predictor:
    """The inference stack of a model: Dense (with their activation epilogues) and
    Activation layers, run in one call per ``predict``.

    Parameters
    ----------
    dtype : numpy dtype
    n_in : int
    nodes : list of dict
        Keys ``kind`` (NODE_DENSE or NODE_ACTIVATION), ``n_in``, ``n_out``,
        ``code``, ``param``; Dense: ``kernel``, ``bias`` (the layers' live arrays).
    max_threads, parallel_threshold : int
    block : int
        Rows per block when a large input is split between threads.
    """

    cdef PNode *nodes
    cdef int n_nodes
    cdef readonly Py_ssize_t n_in, n_out, width, block
    cdef readonly int max_threads
    cdef Py_ssize_t threshold
    cdef object dtype
    cdef int typenum
    cdef list _keep
    cdef cnp.ndarray _small   # workspace of two (block, width) buffers per thread
    cdef bint _busy           # a call is using _small (see predict)

    def __cinit__(self):
        self.nodes = NULL

    def __dealloc__(self):
        free(self.nodes)

    def __init__(self, dtype, Py_ssize_t n_in, list nodes, int max_threads=1,
                 Py_ssize_t parallel_threshold=65536, Py_ssize_t block=256):
        cdef int i
        cdef PNode *nd
        cdef Py_ssize_t width = n_in
        dtype = np.dtype(dtype)
        if dtype != np.float32 and dtype != np.float64:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if not nodes:
            raise ValueError("nodes must not be empty")
        self.dtype = dtype
        self.typenum = cnp.NPY_FLOAT64 if dtype == np.float64 else cnp.NPY_FLOAT32
        self._keep = []
        self.n_nodes = len(nodes)
        self.nodes = <PNode *>calloc(self.n_nodes, sizeof(PNode))
        if self.nodes == NULL:
            raise MemoryError()
        for i, spec in enumerate(nodes):
            nd = &self.nodes[i]
            nd.kind = spec["kind"]
            nd.n_in, nd.n_out = spec["n_in"], spec["n_out"]
            if nd.n_in != width:
                raise ValueError(f"nodes[{i}] takes {nd.n_in} inputs, the previous node gives {width}")
            width = nd.n_out
            nd.code = spec.get("code", FNN_ACT_LINEAR)
            nd.param = spec.get("param", 0.0)
            if nd.kind == _NODE_DENSE:
                for key, shape in (("kernel", (nd.n_in, nd.n_out)), ("bias", (nd.n_out,))):
                    a = spec.get(key)
                    if a is None:
                        continue
                    _check_array(a, dtype, key)
                    if a.shape != shape:
                        raise ValueError(f"nodes[{i}] {key} has shape {a.shape}, expected {shape}")
                    self._keep.append(a)
                nd.kernel = _data(spec["kernel"])
                nd.bias = _data(spec.get("bias"))
            elif nd.kind != _NODE_ACTIVATION or nd.n_in != nd.n_out:
                raise ValueError(f"nodes[{i}]: only Dense and width-keeping Activation nodes")
        self.n_in, self.n_out = n_in, width
        self.width = max([n_in] + [spec["n_out"] for spec in nodes])
        self.block = max(1, block)
        self.max_threads = max(1, max_threads)
        self.threshold = parallel_threshold
        self._small = np.empty(2 * self.max_threads * self.block * self.width, dtype)

    def set_threads(self, int max_threads, Py_ssize_t parallel_threshold):
        if max_threads > self.max_threads:
            self._small = np.empty(2 * max_threads * self.block * self.width, self.dtype)
        self.max_threads = max(1, max_threads)
        self.threshold = parallel_threshold

    def predict(self, x, bint check_finite=False):
        """The outputs for a C-contiguous (samples, n_in) array of the plan's dtype.

        With ``check_finite``, None if ``x`` holds a NaN or an infinity (the
        caller reports it); the test is fused with the pass over the input.
        """
        if not isinstance(x, cnp.ndarray):
            raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
        cdef cnp.ndarray X = <cnp.ndarray>x
        if (cnp.PyArray_TYPE(X) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(X)
                or not cnp.PyArray_ISALIGNED(X)):
            X = np.ascontiguousarray(x, dtype=self.dtype)
        cdef Py_ssize_t n = cnp.PyArray_DIMS(X)[0] if cnp.PyArray_NDIM(X) > 0 else 0
        if cnp.PyArray_NDIM(X) < 1 or cnp.PyArray_SIZE(X) != n * self.n_in:
            raise ValueError(f"x must have shape (samples, {self.n_in}), got {x.shape}")
        cdef cnp.npy_intp dims[2]
        dims[0] = n
        dims[1] = self.n_out
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, self.typenum, 0)
        if n == 0:
            return out
        cdef char *px = <char *>cnp.PyArray_DATA(X)
        cdef char *po = <char *>cnp.PyArray_DATA(out)
        cdef char *pw
        cdef Py_ssize_t i, flops = 0, block = self.block, width = self.width
        cdef int threads = 1, gemm_threads = 1
        cdef bint finite = True
        cdef cnp.ndarray work
        cdef bint own
        for i in range(self.n_nodes):
            flops += self.nodes[i].n_in * self.nodes[i].n_out
        flops *= n
        if self.max_threads > 1 and flops >= self.threshold:
            threads = self.max_threads
        # The workspace: the predictor's own, unless another Python thread's call is
        # using it (the GEMMs run without the GIL), in which case this call takes a
        # fresh one: calls from several threads at once each get their own buffers
        # (sharing one gave wrong outputs). Taken and released while holding the
        # GIL, so the test and the claim cannot interleave; `work` keeps the buffer
        # alive even if set_threads replaces it meanwhile.
        own = not self._busy
        if own:
            self._busy = True
            work = self._small
        else:
            work = np.empty(2 * threads * block * width, self.dtype)
        pw = <char *>cnp.PyArray_DATA(work)
        try:
            if n <= block:
                # one block through the stack; a big GEMM still splits between threads
                with nogil:
                    if self.typenum == cnp.NPY_FLOAT64:
                        finite = _predict_rows(self.nodes, self.n_nodes, <double *>px, n,
                                               <double *>pw, (<double *>pw) + n * width,
                                               <double *>po, threads, threads, check_finite)
                    else:
                        finite = _predict_rows(self.nodes, self.n_nodes, <float *>px, n,
                                               <float *>pw, (<float *>pw) + n * width,
                                               <float *>po, threads, threads, check_finite)
                return out if finite else None
            # Larger inputs: whole-stack blocks, shared by the threads (GEMMs
            # single-threaded). On one thread too: a block's GEMMs may take another path
            # than one GEMM over all n rows (wide layers: k cut in blocks or not), so the
            # same blocks on any thread count give the same bits; they also keep the
            # activations in cache instead of allocating two (n, width) buffers per call.
            with nogil:
                if self.typenum == cnp.NPY_FLOAT64:
                    finite = _predict_blocks(self.nodes, self.n_nodes, <double *>px, n,
                                             self.n_in, self.n_out, <double *>pw, block, width,
                                             <double *>po, threads, check_finite)
                else:
                    finite = _predict_blocks(self.nodes, self.n_nodes, <float *>px, n,
                                             self.n_in, self.n_out, <float *>pw, block, width,
                                             <float *>po, threads, check_finite)
            return out if finite else None
        finally:
            if own:
                self._busy = False
