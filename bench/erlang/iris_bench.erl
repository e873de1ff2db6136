%% Erlang/OTP reference figures for the runtime benchmark: process ring,
%% ping-pong, spawn cost and idle process memory, measured on the BEAM itself
%% (meant to be run under `erl +S 1`). Each bench prints one JSON line.
-module(iris_bench).

-export([all/0, version/0, ring/0, pingpong/0, spawn_bench/0, idle_memory/0]).
-export([ring/2, pingpong/1, spawn_bench/1, idle_memory/1]).

%% Throughput and spawn figures are the BEST of up to ?ROUNDS rounds; memory
%% is the MEDIAN of ?ROUNDS rounds. A bench stops starting new rounds once it
%% has used ?BUDGET_MS (at least one round always runs), and every wait on a
%% message is bounded by ?WAIT_MS so nothing can hang.
-define(ROUNDS, 3).
-define(BUDGET_MS, 6000).
-define(WAIT_MS, 30000).

-define(RING_PROCS, 1000).
-define(RING_HOPS, 1000000).
-define(PINGPONG_MSGS, 1000000).
-define(SPAWN_PROCS, 100000).
-define(IDLE_PROCS, 100000).

%% ---------------------------------------------------------------------------
%% Entry points
%% ---------------------------------------------------------------------------

all() ->
    version(),
    ring(),
    pingpong(),
    spawn_bench(),
    idle_memory(),
    ok.

version() ->
    emit([{bench, <<"version">>},
          {otp_release, list_to_binary(erlang:system_info(otp_release))},
          {otp_version, list_to_binary(otp_version())},
          {erts_version, list_to_binary(erlang:system_info(version))},
          {schedulers_online, erlang:system_info(schedulers_online)},
          {word_size, erlang:system_info(wordsize)}]).

%% ---------------------------------------------------------------------------
%% Ring: N processes in a ring, one token travelling Hops hops in total.
%% Only the token's trip is timed; building the ring is not.
%% ---------------------------------------------------------------------------

ring() -> ring(?RING_PROCS, ?RING_HOPS).

ring(NProcs, Hops) when NProcs >= 1, Hops >= 1 ->
    Runs = rounds(fun() -> ring_round(NProcs, Hops) end),
    BestUs = lists:min(Runs),
    emit([{bench, <<"ring">>},
          {procs, NProcs},
          {hops, Hops},
          {stat, <<"best">>},
          {runs_us, Runs},
          {hops_per_s, per_second(Hops, BestUs)}]).

ring_round(NProcs, Hops) ->
    Self = self(),
    Procs = [spawn(fun() -> ring_init(Self) end) || _ <- lists:seq(1, NProcs)],
    [First | _] = Procs,
    link_ring(Procs, First),
    T0 = now_us(),
    First ! {token, Hops},
    receive
        ring_done -> ok
    after ?WAIT_MS ->
        kill_all(Procs),
        error(ring_timeout)
    end,
    Elapsed = now_us() - T0,
    kill_all(Procs),
    Elapsed.

link_ring([P], First) -> P ! {next, First}, ok;
link_ring([P, Next | Rest], First) -> P ! {next, Next}, link_ring([Next | Rest], First).

ring_init(Parent) ->
    receive
        {next, Next} -> ring_loop(Parent, Next)
    end.

ring_loop(Parent, Next) ->
    receive
        {token, 1} ->
            Parent ! ring_done,
            ring_loop(Parent, Next);
        {token, N} ->
            Next ! {token, N - 1},
            ring_loop(Parent, Next)
    end.

%% ---------------------------------------------------------------------------
%% Ping-pong: two processes bouncing a message; Msgs counts both directions.
%% ---------------------------------------------------------------------------

pingpong() -> pingpong(?PINGPONG_MSGS).

pingpong(Msgs) when Msgs >= 2 ->
    Runs = rounds(fun() -> pingpong_round(Msgs div 2) end),
    BestUs = lists:min(Runs),
    Total = (Msgs div 2) * 2,
    emit([{bench, <<"pingpong">>},
          {msgs, Total},
          {stat, <<"best">>},
          {runs_us, Runs},
          {msgs_per_s, per_second(Total, BestUs)}]).

pingpong_round(Pairs) ->
    Self = self(),
    Ponger = spawn(fun ponger/0),
    Pinger = spawn(fun() ->
                           receive go -> ok end,
                           T0 = now_us(),
                           pinger(Ponger, Pairs),
                           Self ! {pingpong_done, self(), now_us() - T0}
                   end),
    Pinger ! go,
    receive
        {pingpong_done, Pinger, Elapsed} ->
            exit(Ponger, kill),
            Elapsed
    after ?WAIT_MS ->
        kill_all([Pinger, Ponger]),
        error(pingpong_timeout)
    end.

pinger(_Ponger, 0) -> ok;
pinger(Ponger, N) ->
    Ponger ! {ping, self()},
    receive pong -> pinger(Ponger, N - 1) end.

ponger() ->
    receive
        {ping, From} ->
            From ! pong,
            ponger()
    end.

%% ---------------------------------------------------------------------------
%% Spawn: time spawning N processes that stay alive (blocked in receive).
%% ---------------------------------------------------------------------------

spawn_bench() -> spawn_bench(?SPAWN_PROCS).

spawn_bench(N) when N >= 1 ->
    Runs = rounds(fun() -> spawn_round(N) end),
    BestUs = lists:min(Runs),
    emit([{bench, <<"spawn">>},
          {procs, N},
          {stat, <<"best">>},
          {runs_us, Runs},
          {spawn_us, BestUs / N}]).

spawn_round(N) ->
    Base = erlang:system_info(process_count),
    erlang:garbage_collect(),
    T0 = now_us(),
    Procs = spawn_idle(N, []),
    Elapsed = now_us() - T0,
    Alive = erlang:system_info(process_count) - Base,
    kill_all(Procs),
    wait_process_count(Base),
    case Alive >= N of
        true -> Elapsed;
        false -> error({spawned_processes_not_alive, Alive, N})
    end.

spawn_idle(0, Acc) -> Acc;
spawn_idle(N, Acc) -> spawn_idle(N - 1, [spawn(fun idle/0) | Acc]).

idle() ->
    receive stop -> ok end.

%% ---------------------------------------------------------------------------
%% Idle memory: erlang:memory(processes) before/after spawning N idle
%% processes. The pids are kept in an ETS table (accounted under `ets`, not
%% `processes`) so the measuring process's own heap does not skew the delta.
%% process_info(P, memory) of one idle process is reported as a cross-check.
%% ---------------------------------------------------------------------------

idle_memory() -> idle_memory(?IDLE_PROCS).

idle_memory(N) when N >= 1 ->
    Runs = rounds(fun() -> idle_round(N) end),
    PerProc = [B || {B, _} <- Runs],
    Single = [S || {_, S} <- Runs],
    Median = median(PerProc),
    SingleMedian = median(Single),
    emit([{bench, <<"idle_memory">>},
          {procs, N},
          {stat, <<"median">>},
          {runs_bytes, PerProc},
          {idle_process_bytes, Median},
          {process_info_memory_bytes, SingleMedian},
          {consistent, abs(Median - SingleMedian) =< 0.25 * SingleMedian}]).

idle_round(N) ->
    Tab = ets:new(iris_idle, [set, private]),
    Base = erlang:system_info(process_count),
    erlang:garbage_collect(),
    Before = erlang:memory(processes),
    spawn_idle_into(Tab, N),
    erlang:garbage_collect(),
    After = erlang:memory(processes),
    [{_, Sample}] = ets:lookup(Tab, N div 2 + 1),
    {memory, SampleBytes} = process_info(Sample, memory),
    ets:foldl(fun({_, P}, ok) -> exit(P, kill), ok end, ok, Tab),
    ets:delete(Tab),
    wait_process_count(Base),
    {(After - Before) / N, SampleBytes}.

spawn_idle_into(_Tab, 0) -> ok;
spawn_idle_into(Tab, N) ->
    true = ets:insert(Tab, {N, spawn(fun idle/0)}),
    spawn_idle_into(Tab, N - 1).

%% ---------------------------------------------------------------------------
%% Helpers
%% ---------------------------------------------------------------------------

%% Runs Fun up to ?ROUNDS times, stopping early once ?BUDGET_MS is used.
rounds(Fun) ->
    Deadline = now_us() + ?BUDGET_MS * 1000,
    rounds(Fun, ?ROUNDS, Deadline, []).

rounds(_Fun, 0, _Deadline, Acc) -> lists:reverse(Acc);
rounds(Fun, Left, Deadline, Acc) ->
    R = Fun(),
    case Acc =/= [] andalso now_us() >= Deadline of
        true -> lists:reverse([R | Acc]);
        false -> rounds(Fun, Left - 1, Deadline, [R | Acc])
    end.

now_us() -> erlang:monotonic_time(microsecond).

per_second(Count, Us) -> Count * 1000000 / max(Us, 1).

median(L) ->
    S = lists:sort(L),
    Len = length(S),
    case Len rem 2 of
        1 -> lists:nth(Len div 2 + 1, S);
        0 -> (lists:nth(Len div 2, S) + lists:nth(Len div 2 + 1, S)) / 2
    end.

kill_all(Procs) -> lists:foreach(fun(P) -> exit(P, kill) end, Procs).

%% Waits (bounded) until killed processes have actually gone away, so the
%% next round starts from the same state.
wait_process_count(Base) ->
    wait_process_count(Base, now_us() + ?WAIT_MS * 1000).

wait_process_count(Base, Deadline) ->
    case erlang:system_info(process_count) =< Base of
        true -> ok;
        false ->
            case now_us() >= Deadline of
                true -> ok;
                false ->
                    receive after 1 -> ok end,
                    wait_process_count(Base, Deadline)
            end
    end.

otp_version() ->
    Release = erlang:system_info(otp_release),
    File = filename:join([code:root_dir(), "releases", Release, "OTP_VERSION"]),
    case file:read_file(File) of
        {ok, Bin} -> string:trim(binary_to_list(Bin));
        _ -> Release
    end.

%% Minimal JSON encoding for the flat property lists printed above.
emit(Props) ->
    io:put_chars([json_obj(Props), $\n]),
    ok.

json_obj(Props) ->
    Fields = [[json_str(atom_to_binary(K, utf8)), $:, json_val(V)] || {K, V} <- Props],
    [${, lists:join($,, Fields), $}].

json_val(true) -> <<"true">>;
json_val(false) -> <<"false">>;
json_val(V) when is_integer(V) -> integer_to_binary(V);
json_val(V) when is_float(V) -> float_to_binary(V, [{decimals, 3}, compact]);
json_val(V) when is_binary(V) -> json_str(V);
json_val(V) when is_list(V) -> [$[, lists:join($,, [json_val(E) || E <- V]), $]].

json_str(B) ->
    [$", [json_char(C) || <<C>> <= B], $"].

json_char($") -> <<"\\\"">>;
json_char($\\) -> <<"\\\\">>;
json_char(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
json_char(C) -> C.
