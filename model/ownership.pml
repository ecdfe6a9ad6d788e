/*
 * ownership.pml: who owns an NDIS packet descriptor, from send to completion, across driver completion,
 * the miniport's BeginIndex return, the protocol's reclaim, close (with a timeout) and miniport death.
 *
 * Processes (one binding, one transmit packet ring):
 *   protocol   the library's Adapter on the protocol's one thread: send, pollCompletions, the wait's
 *              liveness check, abandon, close(timeoutSeconds:)   (Sources/Ringport/Adapter+*.swift)
 *   dataplane  the miniport's data thread: post (NextIndex), the driver's completion (status written into
 *              the descriptor), drain (BeginIndex), remove/cancelAll, shutdown    (MiniportContext.swift)
 *   control    the miniport's control thread: `case .close` of ControlPlane.swift
 *   death      the miniport process may die at any moment (all its threads stop; the socket closes)
 *   monitor    checks "never two owners" in every state
 *
 * Each of the ND descriptors is sent at most once and descriptor d sits in ring slot d, so the ring indices
 * are linear (0..ND). Index wrap-around and the ring's own hand-over are verified by ring.pml.
 *
 * Variants (-D):
 *   ND=2|3              descriptors (default 2)
 *   BUG_D1              abandon completes everything from the cursor with CLOSING, without first reclaiming
 *                       what BeginIndex already returned (Adapter.abandon before the fix)
 *   BUG_D6              the control thread answers `closed` at once and only enqueues the removal for the
 *                       data thread (ControlPlane `case .close` before the fix)
 *   BUG_REPLY_TIMEOUT   close() stops waiting for the `closed` answer after a timeout and completes
 *                       what is left with CLOSING, though the miniport (fixed) may still hold it
 *   BUG_NO_EOF          close() waits for the `closed` answer only, not for the socket to close: a miniport
 *                       that dies after it read `.close` leaves close() waiting forever
 *   NOMONITOR           no "two owners" monitor, so a run goes on to the late write itself
 *   LIVE                add the LTL property `live` (use pan -a -f -N live)
 */

#ifndef ND
#define ND 2
#endif

/* NDIS status in a descriptor */
#define PENDING 0
#define SUCCESS 1
#define FAILURE 2 /* any other status the driver gives */
#define CLOSING 3

/* ghost: the descriptor's stage */
#define S_PROTO 0     /* the protocol's, never sent */
#define S_RING 1      /* published (EndIndex past it), not yet taken by the driver */
#define S_DRIVER 2    /* posted to the driver (NextIndex past it), not completed */
#define S_COMPLETED 3 /* status written, BeginIndex not yet past it */
#define S_GIVENBACK 4 /* BeginIndex past it: the protocol's memory again, completion not yet decided */
#define S_RETURNED 5  /* the protocol reclaimed it (or completed it locally): its completion is decided */

/* Adapter.owner[] */
#define P_OWN 0
#define M_OWN 1

/* Adapter.state */
#define OPEN 0
#define CLOSINGST 1
#define CLOSED 2

byte Begin, Next, End;            /* the transmit packet ring's indices (shared memory) */
byte status[ND];                  /* the descriptors' status field (shared memory) */
byte stage[ND];                   /* ghost */
byte given[ND];                   /* ghost: the status the driver completed it with (0: none) */
byte powner[ND];                  /* the protocol's Adapter.owner[] */
byte lq[ND];                      /* Adapter.localCompletions: 0 or the status queued */
byte ncomp[ND];                   /* ghost: completions handed to the protocol's handler */
byte cursor;                      /* Adapter's transmit.packetCursor: the next slot to reclaim */
byte pstate = OPEN;
byte outstanding, sent;
bool dead;                        /* the miniport process is gone: its socket reads EOF */
bool closeReq;                    /* the protocol sent `.close` */
bool removeQueued;                /* the control thread enqueued `.remove` for the data thread */
bool removing, removed;           /* the data thread's remove(): started / done (everything returned) */
bool closedAns;                   /* the control thread answered `.closed` */
bool closeReturned;               /* close() returned: the protocol frees or reuses its descriptors */

/* The miniport holds d: it is in [BeginIndex, EndIndex), the miniport is alive and has the binding. */
#define HELD(d) (!dead && !removed && stage[d] >= S_RING && stage[d] <= S_COMPLETED)
#define TWO(d) (powner[d] == P_OWN && HELD(d))
#if ND == 2
#define TWO_OWNERS (TWO(0) || TWO(1))
#else
#define TWO_OWNERS (TWO(0) || TWO(1) || TWO(2))
#endif

#define READABLE (dead || closedAns)   /* socket.isReadable(): the answer, or EOF */

/* ---------------------------------------------------------------- protocol */

/* The completion of d is decided with status s: the packet is the protocol's again (Adapter.finish). */
inline decide(d, s) {
    assert(powner[d] == M_OWN && stage[d] != S_PROTO && stage[d] != S_RETURNED); /* one completion */
    /* a packet the driver completed with SUCCESS and the miniport returned is reported SUCCESS, never
     * CLOSING */
    assert(!(stage[d] == S_GIVENBACK && given[d] == SUCCESS && s != SUCCESS));
    /* more generally: a returned packet is reported with the status the miniport wrote */
    assert(stage[d] != S_GIVENBACK || s == status[d]);
    stage[d] = S_RETURNED;
    powner[d] = P_OWN;
    outstanding--
}

/* The handler sees d's completion. */
inline deliver(d, s) {
    assert(ncomp[d] == 0);   /* exactly one completion */
    ncomp[d]++
}

/* Adapter.reclaim: load BeginIndex once, take back every slot before it with the status written. */
inline reclaim(toLocal) {
    b = Begin;
    do
    :: atomic { cursor != b ->
        s = status[cursor];
        assert(s != PENDING);   /* the miniport returns a packet only with its status */
        decide(cursor, s);
        if
        :: toLocal -> lq[cursor] = s
        :: else -> deliver(cursor, s); got++
        fi;
        cursor++ }
    :: else -> b = 0; s = 0; break
    od
}

/* Adapter.abandon: the binding is gone. */
inline abandon() {
    if
    :: pstate == CLOSED
    :: else ->
#ifndef BUG_D1
        /* fixed: what the miniport did return keeps its status */
        reclaim(true);
#endif
        pstate = CLOSED;
        /* the rest completes locally with CLOSING */
        do
        :: atomic { cursor != End -> decide(cursor, CLOSING); lq[cursor] = CLOSING; cursor++ }
        :: else -> break
        od
    fi
}

/* Adapter.checkLiveness (its 1 ms throttle only skips checks) */
inline checkLiveness() {
    if
    :: pstate != CLOSED && READABLE -> abandon()
    :: else
    fi
}

/* Adapter.pollCompletions */
inline pollCompletions() {
    got = 0;
    if
    :: pstate != CLOSED -> reclaim(false)
    :: else
    fi;
    i = 0;
    do
    :: i < ND ->
        atomic { if :: lq[i] != 0 -> deliver(i, lq[i]); lq[i] = 0; got++ :: else fi; i++ }
    :: else -> i = 0; break
    od;
    if
    :: got == 0 -> checkLiveness()
    :: else
    fi;
    got = 0
}

/* Adapter.send: submit + flushBacklog (the ring never fills: ND < ring size). */
inline send() {
    atomic {
        assert(!HELD(sent));
        powner[sent] = M_OWN;
        status[sent] = PENDING;
        outstanding++;
        stage[sent] = S_RING;
        End++;          /* publish */
        sent++
    }
}

active proctype protocol() {
    byte b, s, i, got;
    /* The application: sends, polls, waits (the wait wakes up and checks liveness before it reclaims). */
    do
    :: pstate == OPEN && sent < ND -> send()
    :: pollCompletions()
    :: checkLiveness()
    :: break
    od;
    /* close(timeoutSeconds:) */
    if
    :: pstate == CLOSED -> pollCompletions()
    :: else ->
        pstate = CLOSINGST;
        /* wait up to the timeout for the outstanding sends */
        do
        :: outstanding == 0 -> break
        :: pstate != CLOSINGST -> break
        :: break                          /* the timeout expired */
        :: pollCompletions()              /* waitForCompletions */
        :: checkLiveness()
        od;
        if
        :: pstate == CLOSINGST ->
            closeReq = true;              /* socket.send(.close): the miniport cancels what it holds */
#ifdef BUG_REPLY_TIMEOUT
            if
            :: READABLE
            :: true                       /* gave up waiting for the answer */
            fi;
#elif defined(BUG_NO_EOF)
            closedAns;
#else
            READABLE;                     /* fixed: wait for `closed`, or for the socket to close (death) */
#endif
            abandon()
        :: else
        fi;
        pollCompletions()
    fi;
    closeReturned = true;
    /* every sent packet got exactly one completion; nothing is left with the miniport */
    assert(outstanding == 0);
    i = 0;
    do
    :: i < ND -> assert(ncomp[i] == (i < sent -> 1 : 0) && lq[i] == 0 && powner[i] == P_OWN); i++
    :: else -> break
    od
}

/* ---------------------------------------------------------------- miniport */

/* A write into the shared segment by the miniport: never after close() returned; a descriptor only while
 * the protocol has it as the miniport's. */
#define MWRITE_DESC(d) assert(powner[d] == M_OWN); assert(closeReturned == false)
#define MWRITE_RING assert(!closeReturned)

/* MiniportContext.remove -> cancelAll: CLOSING into everything not completed, then return it all. The
 * iterators snapshot EndIndex when made: allPackets() first (e), postPackets() later (End again). */
inline cancelAll() {
    e = End;
    j = Begin;
    do
    :: atomic { j != e ->
        if
        :: stage[j] != S_COMPLETED -> MWRITE_DESC(j); status[j] = CLOSING; stage[j] = S_COMPLETED
        :: else
        fi;
        j++ }
    :: else -> j = 0; break
    od;
    atomic { MWRITE_RING; Next = End }          /* post.set(): posted, never given to the driver */
    atomic {
        MWRITE_RING;
        j = Begin;
        do
        :: j != e -> stage[j] = S_GIVENBACK; j++
        :: else -> break
        od;
        j = 0;
        Begin = e;                                /* all.set() */
        e = 0
    };
    removed = true                                /* the binding is gone: the miniport holds nothing */
}

/* NdisMSendComplete: the driver writes its status into the descriptor. */
inline complete(d) {
    if
    :: st = SUCCESS
    :: st = FAILURE
    fi;
    MWRITE_DESC(d); status[d] = st; stage[d] = S_COMPLETED; given[d] = st;
    st = 0
}

active proctype dataplane() {
    byte j, st, e;
end_idle:
        do
        :: atomic { !removing && Next != End -> MWRITE_RING; stage[Next] = S_DRIVER; Next++ }   /* post */
        :: atomic { !removing && stage[0] == S_DRIVER -> complete(0) }                    /* the driver ... */
        :: atomic { !removing && stage[1] == S_DRIVER -> complete(1) }                    /* ... completes, */
#if ND > 2
        :: atomic { !removing && stage[2] == S_DRIVER -> complete(2) }                    /* in any order */
#endif
        :: atomic { !removing && Begin != Next && stage[Begin] == S_COMPLETED ->           /* drain */
            MWRITE_RING;
            do
            :: Begin != Next && stage[Begin] == S_COMPLETED -> stage[Begin] = S_GIVENBACK; Begin++
            :: else -> break
            od }
        :: atomic { !removing && removeQueued -> removing = true };                         /* `.remove` */
            cancelAll()
        :: atomic { !removing -> removing = true };                                         /* shutdown */
            cancelAll();
            dead = true    /* then the control thread exits and the sockets close */
        od unless { dead }
}

active proctype control() {
end_wait:
    {
        closeReq;
        atomic {
            removeQueued = true;
#ifdef BUG_D6
            closedAns = true      /* answered at once; the data thread removes the binding later */
#endif
        };
#ifndef BUG_D6
end_removed:
        removed;                  /* fixed: answer only after the data thread removed the binding */
        closedAns = true
#endif
    } unless { dead }
}

active proctype death() {
    if
    :: dead = true
    :: skip
    fi
}

#ifndef NOMONITOR
active proctype monitor() {
end_ok:
    atomic { TWO_OWNERS -> assert(!TWO_OWNERS) }  /* never two owners at once */
}
#endif

#ifdef LIVE
/* once the protocol asked to close, close() returns (every sent packet has then completed: see the end of
 * the protocol) */
ltl live { [] (closeReq -> <> closeReturned) }
#endif
