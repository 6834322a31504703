/*
 * valet_spawner.c - the stock spawner program, valet-spawner: valetd execs
 * it at startup (see spawn_proto.h). It has no tasks of its own; its
 * plugins and the config's exec tasks are all it runs. Started by hand it
 * runs valetd with itself as the spawner, as any program with its own
 * tasks does (valet_main()).
 */
#include <valet.h>

int main(int argc, char **argv)
{
	return valet_main(argc, argv);
}
