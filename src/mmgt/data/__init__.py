"""DataModules over a clip store, one per stage.

:class:`~mmgt.data.pose_audio.PoseAudioDataModule` (Stage I) and :class:`~mmgt.data.video.VideoDataModule`
(Stage II), on the shared :class:`~mmgt.data.store.StoreDataModule` (store, splits, loaders).
"""
