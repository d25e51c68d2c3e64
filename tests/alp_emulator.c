/*
 * Emulated ViALUX ALP-4.3 library (libalp43.so) for tests: a V-7001 (DLP7000, XGA 1024×768) that
 * the real ALP4lib drives through ctypes, exactly as it would drive the vendor's library.
 *
 * Behaviour emulated (values from ../shared/reference/daemon.md §2):
 *   - one device; AlpDevAlloc twice -> ALP_NOT_READY; calls with a wrong device id -> ALP_NOT_AVAILABLE;
 *   - sequence memory of 43,690 binary pictures (an 8-bit picture takes 8); AlpSeqAlloc beyond it ->
 *     ALP_MEMORY_FULL;
 *   - minimum picture time by bit depth (44 µs binary ... 3,448 µs 8-bit); AlpSeqTiming below it ->
 *     ALP_PARM_INVALID;
 *   - AlpProjStart runs a timer thread that shows each picture at its picture time, once per
 *     ALP_SEQ_REPEAT iteration, and raises the synch output (a callback, see FakeAlpSetSyncCallback);
 *     AlpProjStartCont shows the sequence over and over, a synch edge per picture, until halted;
 *     AlpProjWait blocks until done (for ever in loop mode); AlpDevHalt/AlpProjHalt stop at once;
 *   - freeing a running sequence or the device while projecting -> ALP_NOT_IDLE; AlpSeqPut into the
 *     running sequence -> ALP_SEQ_IN_USE;
 *   - AlpSeqPut keeps the caller's pointer and reads the picture when it is displayed, like a DMA
 *     engine: a caller that frees its buffer early shows garbage (or crashes) - the adapter must keep
 *     uploaded buffers alive while the device uses them;
 *   - device removal (FakeAlpSetRemoved): every call then returns ALP_DEVICE_REMOVED and projection stops;
 *   - AlpProjInquireEx(ALP_PROJ_PROGRESS) fills nine fields, 32-bit (the Windows header's layout, 36
 *     bytes, the default) or 64-bit (unsigned long on LP64 Linux, 72 bytes: FakeAlpSetProgressLayout),
 *     so a test can check that the caller's buffer holds what the library writes
 *     (FakeAlpProgressBytes). nFrameCounter = pictures left in the current iteration, nSequenceCounter
 *     = iterations left (counting down from ALP_SEQ_REPEAT, wrapping below 0 in loop mode, with
 *     nSequenceCounterUnderflow then set); both change together when a picture begins.
 *
 * Calling convention: ALP4lib passes Python ints (C int), c_long and c_ulong (8 bytes on Linux) without
 * argtypes. Integer arguments are therefore read as int32_t - the low half of each 64-bit register or
 * stack slot on x86-64 - and outputs are written as 32 bits into the caller's zero-initialised buffer.
 *
 * Test hooks (not part of the ALP API) are prefixed FakeAlp.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

enum {
    ALP_OK = 0, ALP_NOT_ONLINE = 1001, ALP_NOT_IDLE = 1002, ALP_NOT_AVAILABLE = 1003, ALP_NOT_READY = 1004,
    ALP_PARM_INVALID = 1005, ALP_ADDR_INVALID = 1006, ALP_MEMORY_FULL = 1007, ALP_SEQ_IN_USE = 1008,
    ALP_DEVICE_REMOVED = 1012,
    ALP_DEVICE_NUMBER = 2000, ALP_VERSION = 2001, ALP_DEV_STATE = 2002, ALP_AVAIL_MEMORY = 2003,
    ALP_SYNCH_POLARITY = 2004, ALP_TRIGGER_EDGE = 2005, ALP_LEVEL_HIGH = 2006, ALP_LEVEL_LOW = 2007,
    ALP_EDGE_FALLING = 2008, ALP_EDGE_RISING = 2009, ALP_DEV_DMDTYPE = 2021, ALP_DMDTYPE_XGA_07A = 4,
    ALP_DEV_DISPLAY_HEIGHT = 2057, ALP_DEV_DISPLAY_WIDTH = 2058,
    ALP_SEQ_REPEAT = 2100, ALP_FIRSTFRAME = 2101, ALP_LASTFRAME = 2102, ALP_BITNUM = 2103, ALP_BIN_MODE = 2104,
    ALP_DATA_FORMAT = 2110, ALP_SEQ_PUT_LOCK = 2119,
    ALP_BITPLANES = 2200, ALP_PICNUM = 2201, ALP_PICTURE_TIME = 2203, ALP_ILLUMINATE_TIME = 2204,
    ALP_SYNCH_DELAY = 2205, ALP_SYNCH_PULSEWIDTH = 2206, ALP_TRIGGER_IN_DELAY = 2207,
    ALP_MAX_SYNCH_DELAY = 2209, ALP_MIN_PICTURE_TIME = 2211, ALP_MIN_ILLUMINATE_TIME = 2212,
    ALP_MAX_PICTURE_TIME = 2213,
    ALP_PROJ_MODE = 2300, ALP_MASTER = 2301, ALP_SLAVE = 2302, ALP_PROJ_QUEUE_MODE = 2314,
    ALP_PROJ_PROGRESS = 2318, ALP_PROJ_STEP = 2329, ALP_PROJ_STATE = 2400,
    ALP_PROJ_ACTIVE = 1200, ALP_PROJ_IDLE = 1201, ALP_DEV_BUSY = 1100, ALP_DEV_IDLE = 1102,
};

#define ROWS 768
#define COLUMNS 1024
#define MEMORY_BINARY_PICTURES 43690
#define MAX_SEQUENCES 64
#define MAX_LOG 200000
#define DEVICE_ID 1
#define SERIAL 7001

typedef struct {
    int used;
    int32_t bitplanes, picnum, repeat, first, last, data_format;
    int32_t picture_time, illuminate_time, synch_delay, synch_pulse_width, trigger_in_delay;
    const uint8_t **pictures; /* caller's memory, read at display time */
} sequence_t;

enum { PROGRESS_FIELDS = 9, ALP_FLAG_QUEUE_IDLE = 1, ALP_FLAG_SEQUENCE_INDEFINITE = 4, ALP_FLAG_FRAME_FINISHED = 8 };

typedef void (*sync_callback_t)(int32_t sequence, int32_t picture, uint64_t checksum, int64_t time_ns);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed; /* CLOCK_MONOTONIC, initialised in the constructor */

static struct {
    int allocated, removed;
    int32_t synch_polarity, trigger_edge, proj_mode;
    sequence_t seq[MAX_SEQUENCES + 1];
    int64_t memory_used;
    /* projection */
    int active, halt, thread_live, continuous;
    pthread_t thread;
    int32_t running, frames_left;
    int64_t iterations_done;
    int32_t progress_field_bytes; /* 4 (default) or 8 */
    /* display log */
    int64_t shown;
    int32_t log_seq[MAX_LOG], log_picture[MAX_LOG];
    uint64_t log_checksum[MAX_LOG];
    int64_t log_time_ns[MAX_LOG];
    sync_callback_t callback;
    /* fault injection */
    char inject_function[64];
    int32_t inject_code, inject_countdown;
    int32_t override_type[8], override_value[8], overrides;
} S;

__attribute__((constructor)) static void init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attr);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Checksum of one displayed picture, cheap to recompute in numpy: sum(data[i] * ((i * 2654435761) mod 2^32)). */
static uint64_t checksum(const uint8_t *data, int64_t size) {
    uint64_t sum = 0;
    if (!data) return 0;
    for (int64_t i = 0; i < size; i++) sum += (uint64_t)data[i] * (((uint64_t)i * 2654435761ULL) & 0xffffffffULL);
    return sum;
}

static int32_t min_picture_time(int32_t bitplanes) {
    /* 44 µs for a binary picture, 3,448 µs for 8 bit-planes; in between grows with the PWM weights. */
    return 44 + (int32_t)((3448 - 44) * (double)((1 << bitplanes) - 2) / 254.0);
}

static int64_t picture_bytes(const sequence_t *q) {
    return q->data_format >= 2 ? (int64_t)ROWS * COLUMNS / 8 : (int64_t)ROWS * COLUMNS;
}

/* Common entry: injected error, removal, device id. Called with the lock held. */
static long enter(const char *function, int32_t device) {
    if (S.inject_function[0] && strcmp(S.inject_function, function) == 0) {
        if (S.inject_countdown-- == 0) {
            S.inject_function[0] = 0;
            return S.inject_code;
        }
    }
    if (S.removed) return ALP_DEVICE_REMOVED;
    if (device >= 0 && (!S.allocated || device != DEVICE_ID)) return ALP_NOT_AVAILABLE;
    return ALP_OK;
}

static sequence_t *find(int32_t sequence) {
    if (sequence < 1 || sequence > MAX_SEQUENCES || !S.seq[sequence].used) return NULL;
    return &S.seq[sequence];
}

static void *project(void *unused) {
    (void)unused;
    pthread_mutex_lock(&lock);
    int32_t id = S.running;
    sequence_t *q = &S.seq[id];
    int64_t period = (int64_t)q->picture_time * 1000, due = now_ns();
    for (int64_t iteration = 0; S.continuous || iteration < q->repeat; iteration++) {
        for (int32_t k = q->first; k <= q->last; k++) {
            struct timespec until = {due / 1000000000LL, due % 1000000000LL};
            while (!S.halt && !S.removed && now_ns() < due) pthread_cond_timedwait(&changed, &lock, &until);
            if (S.halt || S.removed) goto done;
            uint64_t sum = checksum(q->pictures[k], picture_bytes(q));
            if (S.shown < MAX_LOG) {
                S.log_seq[S.shown] = id;
                S.log_picture[S.shown] = k;
                S.log_checksum[S.shown] = sum;
                S.log_time_ns[S.shown] = due;
            }
            S.shown++;
            S.frames_left = q->last - k; /* with the iteration count: progress reads them together */
            S.iterations_done = iteration;
            sync_callback_t callback = S.callback;
            pthread_mutex_unlock(&lock); /* the synch output: the camera side runs unlocked */
            if (callback) callback(id, k, sum, due);
            pthread_mutex_lock(&lock);
            due += period;
        }
    }
    S.iterations_done = q->repeat;
    /* The last picture stays on for its picture time before the device counts as idle. */
    {
        struct timespec until = {due / 1000000000LL, due % 1000000000LL};
        while (!S.halt && !S.removed && now_ns() < due) pthread_cond_timedwait(&changed, &lock, &until);
    }
done:
    S.active = 0;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Stop projection and join the thread. Called with the lock held; returns with it held. */
static void stop_projection(void) {
    if (!S.thread_live) return;
    S.halt = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    pthread_join(S.thread, NULL);
    pthread_mutex_lock(&lock);
    S.thread_live = 0;
    S.halt = 0;
}

/* ---- the ALP API used by ALP4lib --------------------------------------------------------------- */

EXPORT long AlpDevAlloc(int32_t device_number, int32_t init_flag, int32_t *device_id) {
    (void)device_number, (void)init_flag;
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevAlloc", -1);
    if (rc == ALP_OK && S.allocated) rc = ALP_NOT_READY;
    if (rc == ALP_OK) {
        S.allocated = 1;
        S.synch_polarity = ALP_LEVEL_HIGH;
        S.trigger_edge = ALP_EDGE_RISING;
        S.proj_mode = ALP_MASTER;
        *device_id = DEVICE_ID;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int override(int32_t type, int32_t *value) {
    for (int i = 0; i < S.overrides; i++)
        if (S.override_type[i] == type) return *value = S.override_value[i], 1;
    return 0;
}

EXPORT long AlpDevInquire(int32_t device, int32_t type, int32_t *value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevInquire", device);
    if (rc == ALP_OK && !override(type, value)) {
        switch (type) {
        case ALP_DEVICE_NUMBER: *value = SERIAL; break;
        case ALP_VERSION: *value = 43; break;
        case ALP_DEV_STATE: *value = S.active ? ALP_DEV_BUSY : ALP_DEV_IDLE; break;
        case ALP_AVAIL_MEMORY: *value = (int32_t)(MEMORY_BINARY_PICTURES - S.memory_used); break;
        case ALP_SYNCH_POLARITY: *value = S.synch_polarity; break;
        case ALP_TRIGGER_EDGE: *value = S.trigger_edge; break;
        case ALP_DEV_DMDTYPE: *value = ALP_DMDTYPE_XGA_07A; break;
        case ALP_DEV_DISPLAY_HEIGHT: *value = ROWS; break;
        case ALP_DEV_DISPLAY_WIDTH: *value = COLUMNS; break;
        case 2050: case 2051: case 2052: *value = 35 * 256; break; /* temperatures, 1/256 °C */
        default: rc = ALP_PARM_INVALID;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpDevControl(int32_t device, int32_t type, int32_t value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevControl", device);
    if (rc == ALP_OK && S.active) rc = ALP_NOT_IDLE;
    if (rc == ALP_OK) {
        if (type == ALP_SYNCH_POLARITY && (value == ALP_LEVEL_HIGH || value == ALP_LEVEL_LOW))
            S.synch_polarity = value;
        else if (type == ALP_TRIGGER_EDGE && (value == ALP_EDGE_RISING || value == ALP_EDGE_FALLING))
            S.trigger_edge = value;
        else
            rc = ALP_PARM_INVALID;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpDevControlEx(int32_t device, int32_t type, void *data) {
    (void)type, (void)data;
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevControlEx", device);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpDevHalt(int32_t device) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevHalt", device);
    if (rc == ALP_OK) stop_projection();
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpDevFree(int32_t device) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpDevFree", device);
    if (rc == ALP_OK && S.active) rc = ALP_NOT_IDLE;
    if (rc == ALP_OK) {
        stop_projection();
        for (int i = 1; i <= MAX_SEQUENCES; i++)
            if (S.seq[i].used) free((void *)S.seq[i].pictures), S.seq[i].used = 0;
        S.memory_used = 0;
        S.allocated = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqAlloc(int32_t device, int32_t bitplanes, int32_t picnum, int32_t *sequence_id) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqAlloc", device);
    int slot = 0;
    if (rc == ALP_OK && (bitplanes < 1 || bitplanes > 8 || picnum < 1)) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK && S.memory_used + (int64_t)bitplanes * picnum > MEMORY_BINARY_PICTURES) rc = ALP_MEMORY_FULL;
    if (rc == ALP_OK) {
        for (slot = 1; slot <= MAX_SEQUENCES && S.seq[slot].used; slot++) {}
        if (slot > MAX_SEQUENCES) rc = ALP_MEMORY_FULL;
    }
    if (rc == ALP_OK) {
        sequence_t *q = &S.seq[slot];
        memset(q, 0, sizeof *q);
        q->used = 1;
        q->bitplanes = bitplanes;
        q->picnum = picnum;
        q->repeat = 1;
        q->first = 0;
        q->last = picnum - 1;
        q->picture_time = 33334; /* ALP default: 30 Hz */
        q->illuminate_time = 33334 - 44;
        q->pictures = calloc((size_t)picnum, sizeof *q->pictures);
        S.memory_used += (int64_t)bitplanes * picnum;
        *sequence_id = slot;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqFree(int32_t device, int32_t sequence) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqFree", device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK && S.active && S.running == sequence) rc = ALP_NOT_IDLE;
    if (rc == ALP_OK) {
        free((void *)q->pictures);
        S.memory_used -= (int64_t)q->bitplanes * q->picnum;
        q->used = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqControl(int32_t device, int32_t sequence, int32_t type, int32_t value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqControl", device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK) {
        switch (type) {
        case ALP_SEQ_REPEAT: if (value < 1) rc = ALP_PARM_INVALID; else q->repeat = value; break;
        case ALP_FIRSTFRAME: if (value < 0 || value >= q->picnum) rc = ALP_PARM_INVALID; else q->first = value; break;
        case ALP_LASTFRAME: if (value < 0 || value >= q->picnum) rc = ALP_PARM_INVALID; else q->last = value; break;
        case ALP_DATA_FORMAT: if (value < 0 || value > 3) rc = ALP_PARM_INVALID; else q->data_format = value; break;
        case ALP_BITNUM: case ALP_BIN_MODE: case ALP_SEQ_PUT_LOCK: break;
        default: rc = ALP_PARM_INVALID;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqTiming(int32_t device, int32_t sequence, int32_t illuminate, int32_t picture, int32_t synch_delay,
                         int32_t synch_pulse_width, int32_t trigger_in_delay) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqTiming", device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK) {
        int32_t minimum = min_picture_time(q->bitplanes);
        if (picture == 0) picture = illuminate ? illuminate + synch_delay + 44 : 33334; /* ALP_DEFAULT */
        if (illuminate == 0) illuminate = picture - synch_delay - 44;
        if (picture < minimum || picture > 10000000 || illuminate < minimum - 44 || synch_delay < 0 ||
            synch_delay > 130000 || synch_delay + illuminate > picture || synch_pulse_width < 0 || trigger_in_delay < 0)
            rc = ALP_PARM_INVALID;
        else {
            q->picture_time = picture;
            q->illuminate_time = illuminate;
            q->synch_delay = synch_delay;
            q->synch_pulse_width = synch_pulse_width ? synch_pulse_width : synch_delay + illuminate;
            q->trigger_in_delay = trigger_in_delay;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqInquire(int32_t device, int32_t sequence, int32_t type, int32_t *value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqInquire", device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK) {
        switch (type) {
        case ALP_BITPLANES: *value = q->bitplanes; break;
        case ALP_PICNUM: *value = q->picnum; break;
        case ALP_SEQ_REPEAT: *value = q->repeat; break;
        case ALP_FIRSTFRAME: *value = q->first; break;
        case ALP_LASTFRAME: *value = q->last; break;
        case ALP_DATA_FORMAT: *value = q->data_format; break;
        case ALP_PICTURE_TIME: *value = q->picture_time; break;
        case ALP_ILLUMINATE_TIME: *value = q->illuminate_time; break;
        case ALP_SYNCH_DELAY: *value = q->synch_delay; break;
        case ALP_SYNCH_PULSEWIDTH: *value = q->synch_pulse_width; break;
        case ALP_TRIGGER_IN_DELAY: *value = q->trigger_in_delay; break;
        case ALP_MAX_SYNCH_DELAY: *value = 130000; break;
        case ALP_MIN_PICTURE_TIME: *value = min_picture_time(q->bitplanes); break;
        case ALP_MIN_ILLUMINATE_TIME: *value = min_picture_time(q->bitplanes) - 44; break;
        case ALP_MAX_PICTURE_TIME: *value = 10000000; break;
        default: rc = ALP_PARM_INVALID;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqPut(int32_t device, int32_t sequence, int32_t offset, int32_t load, const uint8_t *data) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqPut", device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK && S.active && S.running == sequence) rc = ALP_SEQ_IN_USE;
    if (rc == ALP_OK && load == 0) load = q->picnum - offset;
    if (rc == ALP_OK && (offset < 0 || load < 1 || offset + load > q->picnum)) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK && !data) rc = ALP_ADDR_INVALID;
    if (rc == ALP_OK)
        for (int32_t i = 0; i < load; i++) q->pictures[offset + i] = data + (int64_t)i * picture_bytes(q);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpSeqPutEx(int32_t device, int32_t sequence, void *line_put, void *data) {
    (void)sequence, (void)line_put, (void)data;
    pthread_mutex_lock(&lock);
    long rc = enter("AlpSeqPutEx", device);
    if (rc == ALP_OK) rc = ALP_PARM_INVALID; /* not emulated: the adapter uploads whole pictures */
    pthread_mutex_unlock(&lock);
    return rc;
}

static long start(const char *function, int32_t device, int32_t sequence, int continuous) {
    pthread_mutex_lock(&lock);
    long rc = enter(function, device);
    sequence_t *q = rc == ALP_OK ? find(sequence) : NULL;
    if (rc == ALP_OK && !q) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK && S.active) rc = ALP_NOT_IDLE;
    if (rc == ALP_OK) {
        if (S.thread_live) { /* finished: reap it */
            pthread_mutex_unlock(&lock);
            pthread_join(S.thread, NULL);
            pthread_mutex_lock(&lock);
            S.thread_live = 0;
        }
        S.running = sequence;
        S.active = 1;
        S.halt = 0;
        S.continuous = continuous;
        S.frames_left = q->last - q->first + 1;
        S.iterations_done = 0;
        S.thread_live = pthread_create(&S.thread, NULL, project, NULL) == 0;
        if (!S.thread_live) S.active = 0, rc = ALP_NOT_READY;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpProjStart(int32_t device, int32_t sequence) { return start("AlpProjStart", device, sequence, 0); }

EXPORT long AlpProjStartCont(int32_t device, int32_t sequence) {
    return start("AlpProjStartCont", device, sequence, 1);
}

EXPORT long AlpProjWait(int32_t device) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjWait", device);
    while (rc == ALP_OK && S.active) pthread_cond_wait(&changed, &lock);
    if (rc == ALP_OK && S.removed) rc = ALP_DEVICE_REMOVED;
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpProjHalt(int32_t device) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjHalt", device);
    if (rc == ALP_OK) stop_projection();
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpProjControl(int32_t device, int32_t type, int32_t value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjControl", device);
    if (rc == ALP_OK && S.active) rc = ALP_NOT_IDLE;
    if (rc == ALP_OK) {
        if (type == ALP_PROJ_MODE && (value == ALP_MASTER || value == ALP_SLAVE)) S.proj_mode = value;
        else if (type != ALP_PROJ_QUEUE_MODE && type != ALP_PROJ_STEP) rc = ALP_PARM_INVALID;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpProjControlEx(int32_t device, int32_t type, void *data) {
    (void)type, (void)data;
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjControlEx", device);
    pthread_mutex_unlock(&lock);
    return rc;
}

EXPORT long AlpProjInquire(int32_t device, int32_t type, int32_t *value) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjInquire", device);
    /* Check the type before touching the pointer: ALP4lib's ProjInquire passes (id, seq, type, ptr). */
    if (rc == ALP_OK) {
        if (type == ALP_PROJ_STATE) *value = S.active ? ALP_PROJ_ACTIVE : ALP_PROJ_IDLE;
        else if (type == ALP_PROJ_MODE) *value = S.proj_mode;
        else rc = ALP_PARM_INVALID;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int32_t progress_field_bytes(void) { return S.progress_field_bytes == 8 ? 8 : 4; }

EXPORT long AlpProjInquireEx(int32_t device, int32_t type, void *progress) {
    pthread_mutex_lock(&lock);
    long rc = enter("AlpProjInquireEx", device);
    if (rc == ALP_OK && type != ALP_PROJ_PROGRESS) rc = ALP_PARM_INVALID;
    if (rc == ALP_OK) {
        sequence_t *q = find(S.running);
        uint64_t left = q ? (uint64_t)q->repeat - (uint64_t)S.iterations_done : 0; /* wraps in loop mode */
        uint64_t field[PROGRESS_FIELDS] = {
            0,                                              /* CurrentQueueId */
            (uint64_t)S.running,                            /* SequenceId */
            0,                                              /* nWaitingSequences */
            left,                                           /* nSequenceCounter */
            q && S.iterations_done > q->repeat ? 1u : 0u,   /* nSequenceCounterUnderflow */
            (uint64_t)S.frames_left,                        /* nFrameCounter */
            (uint64_t)(q ? q->picture_time : 0),            /* nPictureTime */
            (uint64_t)(q ? q->last - q->first + 1 : 0),     /* nFramesPerSubSequence */
            (S.active ? ALP_FLAG_FRAME_FINISHED : ALP_FLAG_QUEUE_IDLE) | (S.continuous ? ALP_FLAG_SEQUENCE_INDEFINITE : 0),
        };
        uint8_t *out = progress;
        for (int i = 0; i < PROGRESS_FIELDS; i++) {
            if (progress_field_bytes() == 8) memcpy(out + 8 * i, &field[i], 8);
            else {
                uint32_t narrow = (uint32_t)field[i];
                memcpy(out + 4 * i, &narrow, 4);
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* ---- test hooks ------------------------------------------------------------------------------- */

/* Back to a freshly plugged, unallocated device; clears the log, hooks and injected faults. */
EXPORT void FakeAlpReset(void) {
    pthread_mutex_lock(&lock);
    stop_projection();
    for (int i = 1; i <= MAX_SEQUENCES; i++)
        if (S.seq[i].used) free((void *)S.seq[i].pictures);
    memset(&S, 0, sizeof S);
    pthread_mutex_unlock(&lock);
}

/* Unplug (1) or re-plug (0) the device. Unplugging stops projection; calls then fail with DEVICE_REMOVED. */
EXPORT void FakeAlpSetRemoved(int32_t removed) {
    pthread_mutex_lock(&lock);
    S.removed = removed;
    if (removed) { /* the device loses power: projection and memory are gone, even if re-plugged at once */
        S.allocated = 0;
        S.active = 0;
        S.halt = 1;
        for (int i = 1; i <= MAX_SEQUENCES; i++)
            if (S.seq[i].used) free((void *)S.seq[i].pictures), S.seq[i].pictures = NULL, S.seq[i].used = 0;
        S.memory_used = 0;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* The (countdown+1)-th next call of `function` returns `code` (any value, also codes ALP4lib does not know). */
EXPORT void FakeAlpInjectError(const char *function, int32_t code, int32_t countdown) {
    pthread_mutex_lock(&lock);
    strncpy(S.inject_function, function, sizeof S.inject_function - 1);
    S.inject_code = code;
    S.inject_countdown = countdown;
    pthread_mutex_unlock(&lock);
}

/* AlpDevInquire(type) answers `value` from now on (e.g. a negative temperature). */
EXPORT void FakeAlpSetInquire(int32_t type, int32_t value) {
    pthread_mutex_lock(&lock);
    if (S.overrides < 8) S.override_type[S.overrides] = type, S.override_value[S.overrides++] = value;
    pthread_mutex_unlock(&lock);
}

/* Called on the projection thread at every synch edge (the DMD's synch output wired to a camera). */
EXPORT void FakeAlpSetSyncCallback(sync_callback_t callback) {
    pthread_mutex_lock(&lock);
    S.callback = callback;
    pthread_mutex_unlock(&lock);
}

/* Pictures displayed since the reset; entry i of the log. */
EXPORT int64_t FakeAlpShownCount(void) {
    pthread_mutex_lock(&lock);
    int64_t shown = S.shown;
    pthread_mutex_unlock(&lock);
    return shown;
}

EXPORT int32_t FakeAlpShown(int64_t i, int32_t *sequence, int32_t *picture, uint64_t *sum, int64_t *time_ns) {
    pthread_mutex_lock(&lock);
    int32_t ok = i >= 0 && i < S.shown && i < MAX_LOG;
    if (ok) *sequence = S.log_seq[i], *picture = S.log_picture[i], *sum = S.log_checksum[i], *time_ns = S.log_time_ns[i];
    pthread_mutex_unlock(&lock);
    return ok;
}

/* AlpProjInquireEx(ALP_PROJ_PROGRESS) writes 4-byte (default) or 8-byte fields from now on. */
EXPORT void FakeAlpSetProgressLayout(int32_t field_bytes) {
    pthread_mutex_lock(&lock);
    S.progress_field_bytes = field_bytes;
    pthread_mutex_unlock(&lock);
}

/* How many bytes AlpProjInquireEx(ALP_PROJ_PROGRESS) writes: the caller's buffer must hold them. */
EXPORT int32_t FakeAlpProgressBytes(void) {
    pthread_mutex_lock(&lock);
    int32_t bytes = PROGRESS_FIELDS * progress_field_bytes();
    pthread_mutex_unlock(&lock);
    return bytes;
}

/* Binary pictures of sequence memory in use, and the state of the synch output. */
EXPORT int64_t FakeAlpMemoryUsed(void) { return S.memory_used; }
EXPORT int32_t FakeAlpSynchPolarity(void) { return S.synch_polarity; }
EXPORT int32_t FakeAlpSeqValue(int32_t sequence, int32_t type) {
    int32_t value = -1;
    AlpSeqInquire(DEVICE_ID, sequence, type, &value);
    return value;
}
