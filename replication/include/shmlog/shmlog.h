// Everything a producer or a consumer of shmlog needs: #include <shmlog/shmlog.h>. It lives in
// replication/, the top layer, because it includes every other layer (shm/, writer/, reader/).
#pragma once

#include "shmlog/crc32c.h"
#include "shmlog/error.h"
#include "shmlog/framing.h"
#include "shmlog/history.h"
#include "shmlog/producer.h"
#include "shmlog/reader.h"
#include "shmlog/record.h"
#include "shmlog/remote.h"
#include "shmlog/replica.h"
#include "shmlog/replica_daemon.h"
#include "shmlog/segment.h"
#include "shmlog/service.h"
#include "shmlog/snapshot.h"
#include "shmlog/snapshot_service.h"
#include "shmlog/state_machine.h"
#include "shmlog/version.h"
#include "shmlog/writer.h"
