/*
 * valetd.c - the packaged daemon: valet_main() with the tasks that come
 * from plugins and the config. (A program that registers its own C tasks
 * has the same main, with valet_register() calls before valet_main().)
 */
#include <valet.h>

int main(int argc, char **argv)
{
	return valet_main(argc, argv);
}
