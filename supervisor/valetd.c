/*
 * valetd.c - the daemon's main(). A program with C tasks of its own does
 * not link this: it calls valet_main() (libvalet), which runs valetd with
 * that program as the spawner.
 */
int valetd_main(int argc, char **argv);

int main(int argc, char **argv)
{
	return valetd_main(argc, argv);
}
