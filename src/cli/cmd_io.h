/* The io commands of the mltrain CLI (cmd_io.c): reading checkpoints and run logs. */
#ifndef MT_CLI_CMD_IO_H
#define MT_CLI_CMD_IO_H

/* mltrain print-monitor CKPT [--all] */
int mt_cli_print_monitor(int argc, char **argv);
/* mltrain show-weights CKPT -o OUT.png [--max N] */
int mt_cli_show_weights(int argc, char **argv);
/* mltrain plot RUN_DIR|CKPT -o OUT.png [--channels a,b] [--monitor NAME] [--size WxH] */
int mt_cli_plot(int argc, char **argv);

#endif
