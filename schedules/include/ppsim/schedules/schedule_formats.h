#pragma once
/// @file schedule_formats.h
/// @brief Schedules written out so that they read back to the same schedule: ppsim's
/// user-schedule JSON and PyTorch's schedule CSV (torch.distributed.pipelining
/// `_dump_csv` / `_load_csv`), compute-only or with communication actions.
#include <string>

#include <nlohmann/json.hpp>

#include "ppsim/schedules/communication.h"
#include "ppsim/schedules/schedule.h"

namespace ppsim {

/// @brief Token of `op` on `device` as the user-schedule reader reads it back: op_token,
/// plus `s<stage>` where the reader's default placement (chunk c of device d at stage
/// c*p+d, pipe 1 mirrored) would put it elsewhere (V-shaped schedules).
std::string user_token(const Schedule& schedule, int device, const Op& op);

/// @brief Token of a send or receive step of `program` as `ppsim schedule --comm` prints it
/// and the user-schedule reader accepts it: SEND_F3>d1 (activations of micro-batch 3 to
/// device 1), RECV_B3<d1 (gradients of micro-batch 3 from device 1); the micro-batch and
/// suffixes (c, p) are the producer's.
std::string comm_token(const Schedule& schedule, const CommProgram& program, const CommStep& step);

/// @brief The user-schedule document parse_user_schedule reads back to the same op lists,
/// shape, weight policy, iterations and gradient syncs. With a program that has steps,
/// each device's list holds its sends and receives too (comm_token), in program order.
nlohmann::json schedule_to_json(const Schedule& schedule, const CommProgram* comm = nullptr);

/// @brief PyTorch's CSV: one row per rank, actions `<stage><type><micro-batch>` (F, B
/// for a full backward, I and W when backward is split), comma-separated. With a program
/// that has steps, its sends and receives too (SEND_F, RECV_F, SEND_B, RECV_B). Pipe 1 of
/// a bidirectional schedule is written as stages S..2S-1 (a ppsim extension). Throws
/// ScheduleError for an asynchronous schedule (torch runs one flush iteration).
std::string schedule_to_torch_csv(const Schedule& schedule, const CommProgram* comm = nullptr);

/// @brief Reads PyTorch's CSV (either form; communication actions are checked and the
/// compute order kept) for a pipeline of `chunks` chunks per device: rows are devices,
/// micro-batches are the largest index + 1, empty cells are idle steps. Throws
/// ScheduleError "row R, column C, cell 'X': problem" for a malformed cell.
Schedule parse_torch_csv(const std::string& text, int chunks);

/// @brief The gradient all-reduce between the two replicas of each stage of a
/// bidirectional schedule (the devices that run it in pipe 0 and pipe 1, when they differ).
void add_replica_syncs(Schedule& schedule);

}  // namespace ppsim
